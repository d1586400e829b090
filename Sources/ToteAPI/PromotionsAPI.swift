// Method descriptors of tote.v1.Promotions (Protos/tote/v1/promotion.proto). Operator role only:
// the service's roles from `APIServices.promotions`.

/// tote.v1.Promotions methods.
public enum PromotionsAPI {
    public static let definePromotion = MethodDescriptor<Tote_V1_DefinePromotionRequest, Tote_V1_DefinePromotionResponse>(
        service: APIServices.promotions, name: "DefinePromotion", kind: .unary)
    public static let updatePromotion = MethodDescriptor<Tote_V1_UpdatePromotionRequest, Tote_V1_UpdatePromotionResponse>(
        service: APIServices.promotions, name: "UpdatePromotion", kind: .unary)
    public static let endPromotion = MethodDescriptor<Tote_V1_EndPromotionRequest, Tote_V1_EndPromotionResponse>(
        service: APIServices.promotions, name: "EndPromotion", kind: .unary)
    public static let createCouponCode = MethodDescriptor<Tote_V1_CreateCouponCodeRequest, Tote_V1_CreateCouponCodeResponse>(
        service: APIServices.promotions, name: "CreateCouponCode", kind: .unary)
    public static let getPromotion = MethodDescriptor<Tote_V1_GetPromotionRequest, Tote_V1_Promotion>(
        service: APIServices.promotions, name: "GetPromotion", kind: .unary)
    public static let listPromotions = MethodDescriptor<Tote_V1_ListPromotionsRequest, Tote_V1_ListPromotionsResponse>(
        service: APIServices.promotions, name: "ListPromotions", kind: .unary)
}
