import Foundation

/// Writes a training history as the CSV log and an SVG plot of the training curves.
public enum TrainingLog {
    /// Writes `epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds` rows to `csv` and the
    /// loss/accuracy curves (train and test) to `svg`, each atomically.
    public static func write(_ history: [EpochRecord], csv: String, svg: String) throws {
        let text = ([EpochRecord.csvHeader] + history.map(\.csvRow)).joined(separator: "\n") + "\n"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: csv), options: .atomic)
            try Data(plot(history).utf8).write(to: URL(fileURLWithPath: svg), options: .atomic)
        } catch {
            throw CNNError.io("writing the training log \(csv): \(error.localizedDescription)")
        }
    }

    /// An SVG with two panels: loss (left) and accuracy (right) per epoch, train solid, test dashed.
    public static func plot(_ history: [EpochRecord]) -> String {
        let w = 360.0, h = 240.0, m = 40.0
        func panel(x0: Double, title: String, train: [Double], test: [Double], fixedRange: (Double, Double)?) -> String {
            let all = (train + test).filter { $0.isFinite }
            var lo = fixedRange?.0 ?? (all.min() ?? 0), hi = fixedRange?.1 ?? (all.max() ?? 1)
            if hi - lo < 1e-9 { hi = lo + 1; lo -= 0 }
            let n = max(history.count, 2)
            func px(_ i: Int) -> Double { x0 + m + (w - 1.5 * m) * Double(i) / Double(n - 1) }
            func py(_ v: Double) -> Double { h - m - (h - 1.8 * m) * (v - lo) / (hi - lo) }
            func line(_ values: [Double], _ style: String) -> String {
                let pts = values.enumerated().filter { $0.element.isFinite }.map { String(format: "%.1f,%.1f", px($0.offset), py($0.element)) }
                return pts.isEmpty ? "" : "<polyline fill=\"none\" \(style) points=\"\(pts.joined(separator: " "))\"/>"
            }
            var s = "<text x=\"\(x0 + w / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">\(title)</text>"
            s += "<line x1=\"\(x0 + m)\" y1=\"\(h - m)\" x2=\"\(x0 + w - m / 2)\" y2=\"\(h - m)\" stroke=\"#444\"/>"
            s += "<line x1=\"\(x0 + m)\" y1=\"\(h - m)\" x2=\"\(x0 + m)\" y2=\"\(0.8 * m)\" stroke=\"#444\"/>"
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>", x0 + m - 3, py(hi) + 4, hi)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3g</text>", x0 + m - 3, py(lo) + 4, lo)
            s += "<text x=\"\(x0 + w / 2)\" y=\"\(h - 8)\" text-anchor=\"middle\" font-size=\"10\">epoch (1-\(history.count))</text>"
            s += line(train, "stroke=\"#1f77b4\" stroke-width=\"2\"") + line(test, "stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"5,3\"")
            return s
        }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(2 * w))\" height=\"\(Int(h + 20))\" font-family=\"sans-serif\">"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        svg += panel(x0: 0, title: "loss", train: history.map(\.trainLoss), test: history.map(\.testLoss), fixedRange: nil)
        svg += panel(x0: w, title: "accuracy", train: history.map(\.trainAccuracy), test: history.map(\.testAccuracy), fixedRange: nil)
        svg += "<text x=\"\(w - 60)\" y=\"\(h + 12)\" font-size=\"11\" fill=\"#1f77b4\">— train</text>"
        svg += "<text x=\"\(w + 10)\" y=\"\(h + 12)\" font-size=\"11\" fill=\"#d62728\">- - test</text>"
        return svg + "</svg>\n"
    }
}
