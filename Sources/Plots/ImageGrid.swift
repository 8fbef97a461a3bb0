// A dependency-free SVG grid of small grey-scale images with captions (adversarial examples beside their clean
// originals). Each pixel is one <rect>; a 28×28 image is 784 elements, fine for a few dozen images.

import Foundation

public struct SVGImageGrid {
    public struct Cell {
        /// Grey levels in [0, 1] (0 black), row-major (height, width); values outside are clamped.
        public var pixels: [Float]
        public var caption: String
        public init(pixels: [Float], caption: String) { self.pixels = pixels; self.caption = caption }
    }

    public var title: String
    public var imageWidth: Int
    public var imageHeight: Int
    /// Screen pixels per image pixel.
    public var scale: Int = 3
    /// Row labels, one per row of cells (may be shorter than the rows).
    public var rowLabels: [String] = []
    public private(set) var rows: [[Cell]] = []

    public init(title: String, imageWidth: Int, imageHeight: Int) {
        self.title = title; self.imageWidth = imageWidth; self.imageHeight = imageHeight
    }

    public mutating func addRow(_ label: String, _ cells: [Cell]) {
        precondition(cells.allSatisfy { $0.pixels.count == imageWidth * imageHeight }, "every image must have width × height pixels")
        rowLabels.append(label)
        rows.append(cells)
    }

    public func render() -> String {
        let cellW = imageWidth * scale + 10, cellH = imageHeight * scale + 24, labelW = 150, top = 34
        let columns = rows.map(\.count).max() ?? 0
        let width = labelW + columns * cellW + 10, height = top + rows.count * cellH + 10
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
        for (r, cells) in rows.enumerated() {
            let y0 = top + r * cellH
            svg += "<text x=\"10\" y=\"\(y0 + imageHeight * scale / 2)\">\(escape(rowLabels[r]))</text>\n"
            for (c, cell) in cells.enumerated() {
                let x0 = labelW + c * cellW
                svg += "<g transform=\"translate(\(x0) \(y0))\" shape-rendering=\"crispEdges\">\n"
                for py in 0..<imageHeight {
                    for px in 0..<imageWidth {
                        let grey = Int((min(1, max(0, cell.pixels[py * imageWidth + px])) * 255).rounded())
                        svg += "<rect x=\"\(px * scale)\" y=\"\(py * scale)\" width=\"\(scale)\" height=\"\(scale)\" fill=\"rgb(\(grey),\(grey),\(grey))\"/>"
                    }
                }
                svg += "\n<text x=\"0\" y=\"\(imageHeight * scale + 14)\">\(escape(cell.caption))</text>\n</g>\n"
            }
        }
        return svg + "</svg>\n"
    }

    public func write(to path: String) throws { try render().write(toFile: path, atomically: true, encoding: .utf8) }
}
