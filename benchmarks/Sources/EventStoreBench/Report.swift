import BenchSupport

/// Every round of one write workload at one writer count.
struct WriteSummary: Sendable {
    let workload: Workload
    let writers: Int
    let rounds: [WriteMeasurement]

    /// Median over the rounds (the mean of the middle two for an even count).
    var eventsPerSecond: Double { median(rounds.map(\.eventsPerSecond)) }
    var transactionsPerSecond: Double { median(rounds.map(\.transactionsPerSecond)) }

    /// Latencies of every round together.
    var latency: LatencyHistogram {
        rounds.dropFirst().reduce(into: rounds[0].latency) { $0.merge($1.latency) }
    }

    private var events: Double { Double(rounds.reduce(0) { $0 + $1.events }) }
    var clientCPUMicrosPerEvent: Double { Double(rounds.reduce(0) { $0 + $1.clientCPUNanoseconds }) / 1000 / events }
    var serverCPUMicrosPerEvent: Double { Double(rounds.reduce(0) { $0 + $1.serverCPUNanoseconds }) / 1000 / events }
    /// The highest share of the machine other processes took during any round (0...1).
    var othersLoad: Double { rounds.map(\.othersLoad).max() ?? 0 }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Prints the results as Markdown tables (readable as plain text too).
enum Report {
    /// The issue's targets: Tote's appends at least this share of pgbench's TPS at the same
    /// client count, and catch-up reads at least this many events per second.
    static let targetTPSRatio = 0.7
    static let targetCatchUpEventsPerSecond = 200_000.0

    static func line(_ m: WriteMeasurement) -> String {
        let events = m.eventsPerTransaction == 1 ? "" : " (\(formatFixed(m.transactionsPerSecond, 0)) txn/s)"
        let note = m.note.isEmpty ? "" : ", \(m.note)"
        return "\(m.workload.rawValue) writers=\(m.writers): \(formatFixed(m.eventsPerSecond, 0)) events/s\(events), p50 \(millis(m.latency.value(atPercentile: 50))) ms, p99 \(millis(m.latency.value(atPercentile: 99))) ms, others' CPU \(formatFixed(m.othersLoad * 100, 0)) %\(note)"
    }

    static func line(_ m: ReadMeasurement) -> String {
        "\(m.reader): \(m.events) events in \(formatFixed(m.seconds, 2)) s = \(formatFixed(m.eventsPerSecond, 0)) events/s, client CPU \(formatFixed(Double(m.clientCPUNanoseconds) / 1e9 / m.seconds * 100, 0)) %, PostgreSQL CPU \(formatFixed(Double(m.serverCPUNanoseconds) / 1e9 / m.seconds * 100, 0)) %, others' CPU \(formatFixed(m.othersLoad * 100, 0)) %"
    }

    static func render(_ measurements: [WriteMeasurement], _ reads: [ReadMeasurement], options: BenchOptions) -> String {
        var out = ""
        var summaries: [WriteSummary] = []
        for writers in options.writers {
            for workload in Workload.allCases {
                let rounds = measurements.filter { $0.workload == workload && $0.writers == writers }
                if !rounds.isEmpty { summaries.append(WriteSummary(workload: workload, writers: writers, rounds: rounds)) }
            }
        }
        func summary(_ workload: Workload, _ writers: Int) -> WriteSummary? {
            summaries.first { $0.workload == workload && $0.writers == writers }
        }

        if !summaries.isEmpty {
            out += "Writes: events/s and txn/s (one append or one pgbench transaction) are medians of \(options.rounds) round(s) of \(formatFixed(options.durationSeconds, 1)) s; "
            out += "latency per append/transaction, percentiles over all rounds; CPU per event: client = this process (Tote) or pgbench, PostgreSQL = the cluster's processes; "
            out += "others' CPU: share of the machine's \(MachineCPU.cpuCount) CPUs used by anything else during the window (worst round).\n\n"
            out += "| workload | writers | events/s | txn/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | client CPU µs/event | PostgreSQL CPU µs/event | others' CPU |\n"
            out += "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
            for s in summaries {
                let latency = s.latency
                out += "| \(s.workload.rawValue) | \(s.writers) | \(formatFixed(s.eventsPerSecond, 0)) | \(formatFixed(s.transactionsPerSecond, 0)) "
                out += "| \(millis(latency.value(atPercentile: 50))) | \(millis(latency.value(atPercentile: 90))) | \(millis(latency.value(atPercentile: 99))) "
                out += "| \(millis(latency.value(atPercentile: 99.9))) | \(millis(latency.max)) "
                out += "| \(formatFixed(s.clientCPUMicrosPerEvent, 1)) | \(formatFixed(s.serverCPUMicrosPerEvent, 1)) | \(formatFixed(s.othersLoad * 100, 0)) % |\n"
            }
            if options.rounds > 1 {
                out += "\nevents/s per round:\n\n| workload | writers | rounds |\n|---|--:|---|\n"
                for s in summaries {
                    out += "| \(s.workload.rawValue) | \(s.writers) | \(s.rounds.map { formatFixed($0.eventsPerSecond, 0) }.joined(separator: ", ")) |\n"
                }
            }

            let ratio = formatFixed(targetTPSRatio, 1)
            out += "\nSingle-event appends vs pgbench single-row INSERTs (target: Tote ≥ \(ratio)× pgbench's TPS at the same client count):\n\n"
            out += "| writers | workload | Tote appends/s | pgbench TPS | ratio | ≥ \(ratio)×? | Tote p99 ms | pgbench p99 ms |\n"
            out += "|--:|---|--:|--:|--:|:-:|--:|--:|\n"
            for writers in options.writers {
                for workload in [Workload.append] {
                    guard let tote = summary(workload, writers), let pgbench = summary(.pgbench, writers) else { continue }
                    let r = tote.transactionsPerSecond / pgbench.transactionsPerSecond
                    out += "| \(writers) | \(workload.rawValue) | \(formatFixed(tote.transactionsPerSecond, 0)) | \(formatFixed(pgbench.transactionsPerSecond, 0)) "
                    out += "| \(formatFixed(r, 2))× | \(r >= targetTPSRatio ? "yes" : "no") "
                    out += "| \(millis(tote.latency.value(atPercentile: 99))) | \(millis(pgbench.latency.value(atPercentile: 99))) |\n"
                }
            }

            let sameStatementWriters = options.writers.filter { summary(.pgbenchAppend, $0) != nil }
            if !sameStatementWriters.isEmpty {
                out += "\nThe same comparison with pgbench running the event store's own append statement (`pgbench-append`): the gap to `pgbench` is the schema's (stream version check, event bookkeeping), the gap to `append` the Swift client's:\n\n"
                out += "| writers | Tote appends/s | pgbench-append TPS | Tote ÷ pgbench-append | pgbench-append ÷ pgbench | Tote p99 ms | pgbench-append p99 ms |\n"
                out += "|--:|--:|--:|--:|--:|--:|--:|\n"
                for writers in sameStatementWriters {
                    guard let same = summary(.pgbenchAppend, writers) else { continue }
                    let tote = summary(.append, writers)
                    let plain = summary(.pgbench, writers)
                    out += "| \(writers) | \(tote.map { formatFixed($0.transactionsPerSecond, 0) } ?? "–") | \(formatFixed(same.transactionsPerSecond, 0)) "
                    out += "| \(tote.map { formatFixed($0.transactionsPerSecond / same.transactionsPerSecond, 2) + "×" } ?? "–") "
                    out += "| \(plain.map { formatFixed(same.transactionsPerSecond / $0.transactionsPerSecond, 2) + "×" } ?? "–") "
                    out += "| \(tote.map { millis($0.latency.value(atPercentile: 99)) } ?? "–") | \(millis(same.latency.value(atPercentile: 99))) |\n"
                }
            }

            let batchWriters = options.writers.filter { summary(.batch, $0) != nil }
            if !batchWriters.isEmpty {
                out += "\n\(options.batchSize)-event appends vs pgbench \(options.batchSize)-row INSERTs (events/s), and vs pgbench's single-row TPS (transactions/s):\n\n"
                out += "| writers | Tote events/s | pgbench rows/s | events ratio | Tote appends/s | pgbench 1-row TPS | txn ratio | Tote p99 ms | pgbench \(options.batchSize)-row p99 ms |\n"
                out += "|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
                for writers in batchWriters {
                    guard let tote = summary(.batch, writers) else { continue }
                    let batch = summary(.pgbenchBatch, writers)
                    let single = summary(.pgbench, writers)
                    out += "| \(writers) | \(formatFixed(tote.eventsPerSecond, 0)) | \(batch.map { formatFixed($0.eventsPerSecond, 0) } ?? "–") "
                    out += "| \(batch.map { formatFixed(tote.eventsPerSecond / $0.eventsPerSecond, 2) + "×" } ?? "–") "
                    out += "| \(formatFixed(tote.transactionsPerSecond, 0)) | \(single.map { formatFixed($0.transactionsPerSecond, 0) } ?? "–") "
                    out += "| \(single.map { formatFixed(tote.transactionsPerSecond / $0.transactionsPerSecond, 2) + "×" } ?? "–") "
                    out += "| \(millis(tote.latency.value(atPercentile: 99))) | \(batch.map { millis($0.latency.value(atPercentile: 99)) } ?? "–") |\n"
                }
            }
        }

        return out + renderReads(reads, options: options)
    }

    static func renderReads(_ reads: [ReadMeasurement], options: BenchOptions) -> String {
        var out = ""
        if !reads.isEmpty {
            out += "\nCatch-up reads of the whole log (\(reads[0].events) events), batches of \(options.catchUpReadBatch) (target: ≥ \(formatFixed(targetCatchUpEventsPerSecond, 0)) events/s; `sql` is the same query without building events, a reference):\n\n"
            out += "| reader | round | events/s | seconds | client CPU % | PostgreSQL CPU % | others' CPU | ≥ target? |\n"
            out += "|---|---|--:|--:|--:|--:|--:|:-:|\n"
            for m in reads {
                out += "| \(m.reader) | \(m.round) | \(formatFixed(m.eventsPerSecond, 0)) | \(formatFixed(m.seconds, 2)) "
                out += "| \(formatFixed(Double(m.clientCPUNanoseconds) / 1e9 / m.seconds * 100, 0)) | \(formatFixed(Double(m.serverCPUNanoseconds) / 1e9 / m.seconds * 100, 0)) "
                out += "| \(formatFixed(m.othersLoad * 100, 0)) % | \(m.reader == "sql" ? "(ref)" : m.eventsPerSecond >= targetCatchUpEventsPerSecond ? "yes" : "no") |\n"
            }
            let steady = reads.filter { !$0.round.hasPrefix("fresh") }
            if !steady.isEmpty {
                out += "\nSteady state (after VACUUM ANALYZE), median over rounds:\n\n| reader | events/s | ≥ target? |\n|---|--:|:-:|\n"
                for reader in CatchUp.readers {
                    let values = steady.filter { $0.reader == reader }.map(\.eventsPerSecond)
                    guard !values.isEmpty else { continue }
                    let value = median(values)
                    out += "| \(reader) | \(formatFixed(value, 0)) | \(reader == "sql" ? "(ref)" : value >= targetCatchUpEventsPerSecond ? "yes" : "no") |\n"
                }
            }
        }
        return out
    }

    static func millis(_ nanoseconds: UInt64) -> String {
        formatFixed(Double(nanoseconds) / 1e6, 2)
    }
}
