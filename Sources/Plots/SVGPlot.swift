// A small dependency-free SVG line-plot writer for reports (theory check, loss curves, log-log scaling plots).

import Foundation

/// A line plot rendered as a standalone SVG document: title, axis labels, linear or log₁₀ axes, several named series
/// with a legend, and ticks with readable labels ("nice" 1-2-5 steps on linear axes, decades — labelled 10ᵏ with
/// minor ticks at 2…9·10ᵏ when few decades are shown — on log axes).
///
/// Points that cannot be drawn (NaN, ±∞, or ≤ 0 on a log axis) are skipped and break the line there, so a curve
/// that reaches exactly 0 on a log-scale y simply ends. Axis ranges default to the drawable data, expanded to whole
/// ticks; `xRange`/`yRange` override them (data outside is clipped).
///
/// Usage:
///
///     var plot = SVGPlot(title: "Loss", xLabel: "step", yLabel: "loss", logY: true)
///     plot.add("train", points: zip(steps, losses).map { ($0, $1) })
///     try plot.write(to: "docs/loss.svg")
public struct SVGPlot {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        /// Any SVG colour; nil takes the next colour of the palette (Okabe & Ito 2008, colour-blind safe).
        public var color: String?
        public var dashed: Bool
        /// Draw a small circle at every point (for sparse series, e.g. one point per batch size).
        public var markers: Bool

        public init(name: String, points: [(x: Double, y: Double)], color: String? = nil, dashed: Bool = false,
                    markers: Bool = false) {
            self.name = name; self.points = points; self.color = color; self.dashed = dashed; self.markers = markers
        }
    }

    public enum LegendPosition: Sendable { case topRight, topLeft, bottomRight, bottomLeft, outsideRight, none }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX: Bool
    public var logY: Bool
    public var series: [Series] = []
    /// Size of the whole image in pixels (the legend outside adds to the width).
    public var width: Double = 760
    public var height: Double = 480
    public var xRange: ClosedRange<Double>?
    public var yRange: ClosedRange<Double>?
    public var legend: LegendPosition = .topRight

    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

    public init(title: String, xLabel: String, yLabel: String, logX: Bool = false, logY: Bool = false) {
        self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.logX = logX; self.logY = logY
    }

    public mutating func add(_ name: String, points: [(x: Double, y: Double)], color: String? = nil,
                             dashed: Bool = false, markers: Bool = false) {
        series.append(Series(name: name, points: points, color: color, dashed: dashed, markers: markers))
    }

    /// A series with x = xStart, xStart + 1, … (e.g. a value per epoch).
    public mutating func add(_ name: String, values: [Double], xStart: Double = 0, color: String? = nil,
                             dashed: Bool = false, markers: Bool = false) {
        add(name, points: values.enumerated().map { (xStart + Double($0.offset), $0.element) }, color: color,
            dashed: dashed, markers: markers)
    }

    /// Foundation's atomic write: a temporary file renamed over `path`, so a reader never sees half a plot.
    public func write(to path: String) throws { try render().write(toFile: path, atomically: true, encoding: .utf8) }

    // MARK: - Rendering

    /// The SVG document.
    public func render() -> String {
        let xAxis = PlotAxis(values: series.flatMap { $0.points.map(\.x) }, log: logX, fixed: xRange)
        let yAxis = PlotAxis(values: series.flatMap { $0.points.map(\.y) }, log: logY, fixed: yRange)
        let legendWidth = legend == .outsideRight ? legendBoxWidth + 24 : 0
        let left = 78.0, right = 24.0 + legendWidth, top = title.isEmpty ? 20.0 : 44.0, bottom = 58.0
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ x: Double) -> Double { left + xAxis.fraction(x) * plotW }
        func py(_ y: Double) -> Double { top + (1 - yAxis.fraction(y)) * plotH }

        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" \
        viewBox="0 0 \(f(width)) \(f(height))" font-family="Helvetica, Arial, sans-serif" font-size="13">
        <rect width="100%" height="100%" fill="white"/>
        <defs><clipPath id="plot-area"><rect x="\(f(left))" y="\(f(top))" width="\(f(plotW))" height="\(f(plotH))"/></clipPath></defs>

        """
        if !title.isEmpty {
            svg += "<text x=\"\(f(left + plotW / 2))\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">\(escape(title))</text>\n"
        }
        // Grid and ticks.
        svg += "<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n"
        for t in xAxis.minorTicks { svg += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + plotH))\" stroke=\"#f3f3f3\"/>\n" }
        for t in yAxis.minorTicks { svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(t)))\" stroke=\"#f3f3f3\"/>\n" }
        for t in xAxis.ticks { svg += "<line x1=\"\(f(px(t.value)))\" y1=\"\(f(top))\" x2=\"\(f(px(t.value)))\" y2=\"\(f(top + plotH))\"/>\n" }
        for t in yAxis.ticks { svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(t.value)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(t.value)))\"/>\n" }
        svg += "</g>\n<g font-size=\"12\" fill=\"#333\">\n"
        for t in xAxis.ticks {
            svg += "<line x1=\"\(f(px(t.value)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px(t.value)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"#333\"/>"
            svg += "<text x=\"\(f(px(t.value)))\" y=\"\(f(top + plotH + 19))\" text-anchor=\"middle\">\(escape(t.label))</text>\n"
        }
        for t in yAxis.ticks {
            svg += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(t.value)))\" x2=\"\(f(left))\" y2=\"\(f(py(t.value)))\" stroke=\"#333\"/>"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(py(t.value) + 4))\" text-anchor=\"end\">\(escape(t.label))</text>\n"
        }
        svg += "</g>\n"
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(18 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"

        // Series: one polyline per run of drawable points.
        svg += "<g clip-path=\"url(#plot-area)\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n"
        for (index, s) in series.enumerated() {
            let color = s.color ?? Self.palette[index % Self.palette.count]
            let dash = s.dashed ? " stroke-dasharray=\"6 4\"" : ""
            var run: [String] = []
            var markers = ""
            func flush() {
                if run.count > 1 { svg += "<polyline stroke=\"\(color)\"\(dash) points=\"\(run.joined(separator: " "))\"/>\n" }
                run = []
            }
            for p in s.points {
                guard xAxis.drawable(p.x), yAxis.drawable(p.y) else { flush(); continue }
                let (x, y) = (px(p.x), py(p.y))
                run.append("\(f(x)),\(f(y))")
                if s.markers { markers += "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"3\" fill=\"\(color)\" stroke=\"none\"/>" }
            }
            if run.count == 1 && !s.markers {  // a lone point would be invisible as a polyline
                let c = run[0].split(separator: ",")
                markers += "<circle cx=\"\(c[0])\" cy=\"\(c[1])\" r=\"3\" fill=\"\(color)\" stroke=\"none\"/>"
            }
            flush()
            if !markers.isEmpty { svg += markers + "\n" }
        }
        svg += "</g>\n"
        svg += legendSVG(left: left, top: top, plotW: plotW, plotH: plotH)
        svg += "</svg>\n"
        return svg
    }

    private var legendBoxWidth: Double {
        Double(series.map(\.name.count).max() ?? 0) * 7.2 + 48
    }

    private func legendSVG(left: Double, top: Double, plotW: Double, plotH: Double) -> String {
        guard legend != .none, !series.isEmpty else { return "" }
        let rowHeight = 20.0, boxW = legendBoxWidth, boxH = Double(series.count) * rowHeight + 10
        let x0: Double, y0: Double
        switch legend {
        case .topRight: (x0, y0) = (left + plotW - boxW - 10, top + 10)
        case .topLeft: (x0, y0) = (left + 10, top + 10)
        case .bottomRight: (x0, y0) = (left + plotW - boxW - 10, top + plotH - boxH - 10)
        case .bottomLeft: (x0, y0) = (left + 10, top + plotH - boxH - 10)
        case .outsideRight: (x0, y0) = (left + plotW + 16, top)
        case .none: return ""
        }
        var out = "<g font-size=\"12\">\n<rect x=\"\(f(x0))\" y=\"\(f(y0))\" width=\"\(f(boxW))\" height=\"\(f(boxH))\" fill=\"white\" fill-opacity=\"0.9\" stroke=\"#999\"/>\n"
        for (index, s) in series.enumerated() {
            let color = s.color ?? Self.palette[index % Self.palette.count]
            let y = y0 + 5 + rowHeight * (Double(index) + 0.5)
            let dash = s.dashed ? " stroke-dasharray=\"6 4\"" : ""
            out += "<line x1=\"\(f(x0 + 8))\" y1=\"\(f(y))\" x2=\"\(f(x0 + 34))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>"
            out += "<text x=\"\(f(x0 + 40))\" y=\"\(f(y + 4))\">\(escape(s.name))</text>\n"
        }
        return out + "</g>\n"
    }
}

/// One axis: its range (in data units), where ticks go and how they read.
struct PlotAxis {
    struct Tick { var value: Double; var label: String }
    let log: Bool
    /// Range in axis units (log₁₀ of data for log axes).
    let low: Double, high: Double
    private(set) var ticks: [Tick] = []
    private(set) var minorTicks: [Double] = []

    init(values: [Double], log: Bool, fixed: ClosedRange<Double>?) {
        self.log = log
        let usable = values.filter { $0.isFinite && (!log || $0 > 0) }.map { log ? log10($0) : $0 }
        var lo: Double, hi: Double
        if let fixed, !log || fixed.lowerBound > 0 {
            (lo, hi) = log ? (log10(fixed.lowerBound), log10(fixed.upperBound)) : (fixed.lowerBound, fixed.upperBound)
        } else if let mn = usable.min(), let mx = usable.max() {
            (lo, hi) = (mn, mx)
        } else {
            (lo, hi) = (0, 1)
        }
        if hi - lo < 1e-12 * max(1, abs(hi)) { lo -= log ? 0.5 : max(0.5, abs(lo) * 0.1); hi += log ? 0.5 : max(0.5, abs(hi) * 0.1) }
        if log {
            // Whole decades; a fixed range is kept as given.
            if fixed == nil { lo = lo.rounded(.down); hi = hi.rounded(.up) }
            let decades = Int((hi - lo).rounded(.up))
            let every = max(1, Int((Double(decades) / 8).rounded(.up)))
            var k = Int(lo.rounded(.up))
            while Double(k) <= hi + 1e-9 {
                if (k - Int(lo.rounded(.up))) % every == 0 { ticks.append(Tick(value: pow(10, Double(k)), label: PlotAxis.powerOfTen(k))) }
                k += 1
            }
            if decades <= 6 {
                for d in Int(lo.rounded(.down))...Int(hi.rounded(.up)) {
                    for m in 2...9 {
                        let v = log10(Double(m)) + Double(d)
                        if v > lo && v < hi { minorTicks.append(pow(10, v)) }
                    }
                }
            }
        } else {
            let step = PlotAxis.niceStep((hi - lo) / 6)
            if fixed == nil { lo = (lo / step).rounded(.down) * step; hi = (hi / step).rounded(.up) * step }
            var t = (lo / step).rounded(.up) * step
            while t <= hi + step * 1e-9 {
                ticks.append(Tick(value: t, label: PlotAxis.linearLabel(t, step: step)))
                t += step
            }
        }
        self.low = lo; self.high = hi
    }

    func drawable(_ v: Double) -> Bool { v.isFinite && (!log || v > 0) }

    /// Position in [0, 1] along the axis (outside for values outside the range; the plot clips them).
    func fraction(_ v: Double) -> Double { ((log ? log10(v) : v) - low) / (high - low) }

    /// 1, 2 or 5 × 10ᵏ, the smallest at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, log10(raw).rounded(.down))
        for m in [1.0, 2, 5, 10] where m * magnitude >= raw * (1 - 1e-9) { return m * magnitude }
        return 10 * magnitude
    }

    /// As many decimals as the step needs; exponent form for very large or small magnitudes.
    static func linearLabel(_ v: Double, step: Double) -> String {
        if abs(v) < step * 1e-6 { return "0" }
        let magnitude = max(abs(v), step)
        if magnitude >= 1e6 || magnitude < 1e-4 {
            var s = String(format: "%.3g", v)
            if let e = s.firstIndex(of: "e") {  // 1e+06 → 1e6, 2.5e-05 → 2.5e-5
                let mantissa = s[..<e], exponent = Int(s[s.index(after: e)...]) ?? 0
                s = "\(mantissa)e\(exponent)"
            }
            return s
        }
        let decimals = max(0, Int((-log10(step)).rounded(.up)))
        return String(format: "%.\(decimals)f", v)
    }

    /// 10ᵏ with Unicode superscripts (readable in every SVG viewer, unlike baseline-shift); plain for 1, 10, 100.
    static func powerOfTen(_ k: Int) -> String {
        switch k {
        case 0: return "1"
        case 1: return "10"
        case 2: return "100"
        case -1: return "0.1"
        case -2: return "0.01"
        default:
            let superscripts: [Character: Character] = ["0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵",
                                                        "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹", "-": "⁻"]
            return "10" + String(String(k).map { superscripts[$0] ?? $0 })
        }
    }
}

private func f(_ v: Double) -> String {
    let r = (v * 10).rounded() / 10
    return r == r.rounded() ? String(Int(r)) : String(r)
}

func escape(_ s: String) -> String {
    var out = ""
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(ch)
        }
    }
    return out
}
