import Foundation
import Testing
@testable import CNN

/// The distributed parts of the `cnn` command that run without `mpirun`: the benchmarks on the
/// in-process communicator, and the checks of their arguments and of `--sync-batchnorm`.
@Suite(.serialized) struct DistributedCLITests {
    static func json(_ line: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
    }

    @Test func allreduceBenchReportsAlgorithmAndBusBandwidth() throws {
        let result = try CLI.run(["bench", "allreduce", "--ranks", "3", "--min-bytes", "4K", "--max-bytes", "8K", "--iterations", "2", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines.count == 2)
        for (line, bytes) in zip(result.lines, [4096, 8192]) {
            let row = try Self.json(line)
            #expect(row["suite"] as? String == "allreduce" && row["strategy"] as? String == "in-process")
            #expect(row["bytes"] as? Int == bytes && row["ranks"] as? Int == 3 && row["iterations"] as? Int == 2)
            let ms = try #require(row["ms"] as? Double), algbw = try #require(row["algbw_gbps"] as? Double)
            let busbw = try #require(row["busbw_gbps"] as? Double)
            #expect(ms > 0)
            // algbw = bytes / time; busbw = algbw · 2(n−1)/n (both printed to 3 decimals).
            #expect(abs(algbw - Double(bytes) / (ms * 1e-3) / 1e9) <= 0.001 + 1e-3 * algbw)
            #expect(abs(busbw - algbw * 4 / 3) <= 0.002 + 1e-3 * busbw)
        }
    }

    @Test func scalingBenchTrainsOnEveryRank() throws {
        let result = try CLI.run(["bench", "scaling", "--case", "lenet5", "--steps", "1", "--ranks", "2", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let row = try Self.json(try #require(result.lines.first))
        #expect(result.lines.count == 1)
        #expect(row["case"] as? String == "lenet5.mnist.batch64" && row["ranks"] as? Int == 2 && row["global_batch"] as? Int == 128)
        let ips = try #require(row["images_per_s"] as? Double), one = try #require(row["one_rank_images_per_s"] as? Double)
        let efficiency = try #require(row["efficiency"] as? Double)
        #expect(ips > 0 && one > 0)
        #expect(abs(efficiency - ips / (2 * one)) <= 0.002)
    }

    @Test func scalingBenchMeasuresBothGradientPaths() throws {
        for (flag, overlapped) in [("--overlap", true), ("--no-overlap", false)] {
            let result = try CLI.run(["bench", "scaling", "--case", "lenet5", "--steps", "1", "--ranks", "2", flag, "--bucket-mib", "0.25", "--json"])
            #expect(result.status == 0, "\(result.stderr)")
            let row = try Self.json(try #require(result.lines.first))
            #expect(row["overlap"] as? Bool == overlapped && row["bucket_bytes"] as? Int == 1 << 18, "\(row)")
            #expect(row["strategy"] as? String == (overlapped ? "in-process" : "in-process+no-overlap"))
        }
    }

    @Test(arguments: [
        (["train", "--sync-batchnorm"], "--sync-batchnorm needs --distributed"),
        (["bench", "scaling", "--bucket-mib", "0"], "--bucket-mib"),
        (["bench", "allreduce", "--max-bytes", "12Q"], "12Q"),
        (["bench", "allreduce", "--min-bytes", "1M", "--max-bytes", "4K"], "1048576"),
        (["bench", "allreduce", "--min-bytes", "6"], "multiples of 4"),
        (["bench", "scaling", "--case", "vgg99"], "vgg99"),
        (["bench", "scaling", "--steps", "0"], "--steps"),
    ])
    func badArgumentsExitNonZeroNamingTheValue(arguments: [String], value: String) throws {
        let result = try CLI.run(arguments)
        #expect(result.status != 0)
        #expect(result.errorLine.hasPrefix("Error:") && result.errorLine.contains(value), "stderr: \(result.stderr)")
    }
}
