import Plots
import XCTest

final class PlotTests: XCTestCase {
    func testLinearAxesSeriesAndLegend() {
        var plot = SVGPlot(title: "Loss <train & test>", xLabel: "step", yLabel: "loss")
        plot.add("train", points: [(0, 2.5), (50, 1.2), (100, 0.8)])
        plot.add("test", values: [2.4, 1.5, 1.0], xStart: 0, dashed: true)
        let svg = plot.render()
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        XCTAssertTrue(svg.hasSuffix("</svg>\n"))
        XCTAssertTrue(svg.contains("Loss &lt;train &amp; test&gt;"))  // escaped
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2)
        XCTAssertTrue(svg.contains("stroke-dasharray"))
        XCTAssertTrue(svg.contains(">train</text>") && svg.contains(">test</text>"))  // legend entries
        // 1-2-5 ticks: x from 0 to 100 in steps of 20, y in steps of 0.5.
        for label in [">0<", ">20<", ">100<", ">0.5<", ">2.5<"] { XCTAssertTrue(svg.contains(label), label) }
    }

    func testLogAxisSkipsNonPositivePointsAndLabelsDecades() {
        var plot = SVGPlot(title: "", xLabel: "batch", yLabel: "gap", logX: true, logY: true)
        // y = 0 cannot be drawn on a log axis: the line breaks there (two runs).
        plot.add("curve", points: [(1, 1), (10, 1e-3), (100, 0), (1000, 1e-6), (10_000, 1e-8)], markers: false)
        let svg = plot.render()
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2)
        for label in [">1<", ">10<", ">10⁴<", ">10⁻⁸<", ">0.01<"] { XCTAssertTrue(svg.contains(label), label) }
        XCTAssertFalse(svg.contains("nan") || svg.contains("inf"))
    }

    func testNiceStepsAndLabels() {
        XCTAssertEqual(PlotAxisProbe.ticks([0, 0.93]), ["0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        XCTAssertEqual(PlotAxisProbe.ticks([-3, 7]), ["-4", "-2", "0", "2", "4", "6", "8"])
    }
}

/// Reads tick labels back out of a rendered plot's y axis.
enum PlotAxisProbe {
    static func ticks(_ ys: [Double]) -> [String] {
        var plot = SVGPlot(title: "", xLabel: "", yLabel: "")
        plot.add("s", values: ys)
        let svg = plot.render()
        // y labels are right-aligned (text-anchor="end").
        return svg.components(separatedBy: "text-anchor=\"end\">").dropFirst().map { String($0.prefix { $0 != "<" }) }
    }
}
