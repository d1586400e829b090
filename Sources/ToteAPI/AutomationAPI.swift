// Method descriptors of the automation bridge (Protos/tote/v1/automation.proto): the controllers'
// bidirectional session (role controller) and the operators' intervention service (role operator).

/// tote.v1.Automation methods (warehouse controllers).
public enum AutomationAPI {
    /// One controller session: `ControllerMessage`s in, `BridgeMessage`s out (docs/AUTOMATION.md).
    public static let connect = MethodDescriptor<Tote_V1_ControllerMessage, Tote_V1_BridgeMessage>(
        service: APIServices.automation, name: "Connect", kind: .bidirectionalStreaming)
}

/// tote.v1.Operations methods (manual intervention on warehouse tasks).
public enum OperationsAPI {
    public static let listStuckTasks = MethodDescriptor<Tote_V1_ListStuckTasksRequest, Tote_V1_ListStuckTasksResponse>(
        service: APIServices.operations, name: "ListStuckTasks", kind: .unary)
    public static let retryTask = MethodDescriptor<Tote_V1_RetryTaskRequest, Tote_V1_RetryTaskResponse>(
        service: APIServices.operations, name: "RetryTask", kind: .unary)
    public static let reassignTask = MethodDescriptor<Tote_V1_ReassignTaskRequest, Tote_V1_ReassignTaskResponse>(
        service: APIServices.operations, name: "ReassignTask", kind: .unary)
    public static let cancelTask = MethodDescriptor<Tote_V1_CancelTaskRequest, Tote_V1_CancelTaskResponse>(
        service: APIServices.operations, name: "CancelTask", kind: .unary)
    public static let markTaskDone = MethodDescriptor<Tote_V1_MarkTaskDoneRequest, Tote_V1_MarkTaskDoneResponse>(
        service: APIServices.operations, name: "MarkTaskDone", kind: .unary)
}
