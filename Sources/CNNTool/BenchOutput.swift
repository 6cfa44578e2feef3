import CNN
import Foundation

/// One measured case; printed as a table row or, with `--json`, as one JSON object per line:
/// `{"suite":..,"case":..,"strategy":..,"threads":..,"ms":<median>,"gflops":<or null>,"peak_gflops":..}`.
struct BenchRow {
    var suite: String
    var caseName: String
    var strategy: String
    var threads: Int
    var ms: Double?
    var gflops: Double?
    var peakGFLOPS: Double?
    var extra: [(String, String)] = []

    var json: String {
        func num(_ v: Double?) -> String {
            guard let v, v.isFinite else { return "null" }
            return String(format: "%.4f", v)
        }
        func str(_ s: String) -> String {
            var out = "\""
            for ch in s.unicodeScalars {
                switch ch {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                default:
                    if ch.value < 0x20 { out += String(format: "\\u%04x", ch.value) } else { out.unicodeScalars.append(ch) }
                }
            }
            return out + "\""
        }
        var parts = ["\"suite\":\(str(suite))", "\"case\":\(str(caseName))", "\"strategy\":\(str(strategy))",
                     "\"threads\":\(threads)", "\"ms\":\(num(ms))", "\"gflops\":\(num(gflops))",
                     "\"peak_gflops\":\(num(peakGFLOPS))"]
        for (k, v) in extra { parts.append("\(str(k)):\(v)") }
        return "{" + parts.joined(separator: ",") + "}"
    }
}

enum BenchOutput {
    static func machineLine() -> String {
        var model = "unknown CPU"
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return "\(model), \(ComputeRuntime.processorCount) cores, ISA \(ComputeRuntime.activeISA) (detected \(ComputeRuntime.detectedISA)), \(ComputeRuntime.threadCount) threads, OpenMP \(ComputeRuntime.isOpenMPEnabled ? "on" : "off")"
    }

    static func emit(_ rows: [BenchRow], json: Bool) {
        if json {
            for r in rows { print(r.json) }
            return
        }
        print("# \(machineLine())")
        let header = ["suite", "case", "strategy", "threads", "ms", "GFLOP/s", "% peak"]
        var table = [header]
        for r in rows {
            let pct: String
            if let g = r.gflops, let p = r.peakGFLOPS, p > 0 { pct = String(format: "%.1f", 100 * g / p) } else { pct = "-" }
            table.append([r.suite, r.caseName, r.strategy, "\(r.threads)",
                          r.ms.map { String(format: "%.3f", $0) } ?? "-",
                          r.gflops.map { String(format: "%.1f", $0) } ?? "-", pct]
                         + r.extra.map { "\($0.0)=\($0.1)" })
        }
        let widths = (0..<header.count).map { c in table.map { $0.count > c ? $0[c].count : 0 }.max() ?? 0 }
        for row in table {
            var line = ""
            for (c, cell) in row.enumerated() {
                let w = c < widths.count ? widths[c] : cell.count
                line += cell.padding(toLength: max(w, cell.count), withPad: " ", startingAt: 0) + "  "
            }
            print(line.trimmingCharacters(in: .whitespaces))
        }
    }
}
