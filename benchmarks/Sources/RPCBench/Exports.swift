// The latency histogram, clocks, /proc readers and small helpers shared with EventStoreBench.
@_exported import BenchSupport
