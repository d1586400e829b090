/// Running a benchmark's setup and load with bounded concurrency.
extension Sequence where Element: Sendable {
    /// Maps with at most `width` concurrent tasks, keeping the order of the elements.
    public func concurrentMap<T: Sendable>(width: Int, _ transform: @escaping @Sendable (Element) async throws -> T) async throws -> [T] {
        let items = Array(self)
        return try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var results = [T?](repeating: nil, count: items.count)
            var next = 0
            while next < Swift.min(width, items.count) {
                let index = next
                group.addTask { (index, try await transform(items[index])) }
                next += 1
            }
            while let (index, value) = try await group.next() {
                results[index] = value
                if next < items.count {
                    let index = next
                    group.addTask { (index, try await transform(items[index])) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }

    /// Runs `body` on every element with at most `width` concurrent tasks.
    public func concurrentForEach(width: Int, _ body: @escaping @Sendable (Element) async throws -> Void) async throws {
        _ = try await concurrentMap(width: width) { try await body($0) }
    }

    /// Maps one element after another.
    public func asyncMap<T: Sendable>(_ transform: @escaping @Sendable (Element) async throws -> T) async throws -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
