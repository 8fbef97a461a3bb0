// Dimension letters used in this file:
//   N  images in the batch     C  input channels     H, W  input height and width
//   O  output channels         K  kernel side        P, Q  output height and width
// Layout is NCHW, row-major, as PyTorch. A kernel is stored [O, C, K, K] = [O, C·K·K] as a matrix, so the
// matrix optimizers (Muon, LARS, LAMB) see it as the [O, C·K·K] matrix it multiplies (role `matrix`).
//
// 2-D convolution by im2col + GEMM, one image at a time:
//   cols[C·K·K, P·Q]   = im2col(x_n)                      (zero padding, stride S)
//   y_n[O, P·Q]        = W[O, C·K·K] · cols + b[O]
// backward (accumulating, as every backward kernel here):
//   dW[O, C·K·K]      += dy_n[O, P·Q] · colsᵀ
//   db[O]             += Σ_{P·Q} dy_n
//   dcols[C·K·K, P·Q]  = Wᵀ · dy_n,   dx_n += col2im(dcols)
// The column buffer is one image's worth (`ConvShape.columnCount`), reused for every image and recomputed in
// backward instead of stored per image: storing them would cost N·C·K·K·P·Q floats per layer (58 MB for
// 128 images of 16 channels at 28×28), recomputing costs one pass of copies per image.

/// The geometry of one convolution layer.
public struct ConvShape: Equatable, Sendable {
    public var inChannels: Int, height: Int, width: Int
    public var outChannels: Int, kernel: Int, stride: Int, padding: Int

    public init(inChannels: Int, height: Int, width: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        precondition(inChannels > 0 && height > 0 && width > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                     "invalid convolution shape")
        self.inChannels = inChannels
        self.height = height
        self.width = width
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        precondition(outHeight > 0 && outWidth > 0, "a \(kernel)×\(kernel) kernel does not fit a \(height)×\(width) input")
    }

    public var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    /// Columns of the kernel matrix: C·K·K.
    public var patch: Int { inChannels * kernel * kernel }
    /// Floats of one input image, one output image, one image's column buffer.
    public var inputCount: Int { inChannels * height * width }
    public var outputCount: Int { outChannels * outHeight * outWidth }
    public var columnCount: Int { patch * outHeight * outWidth }
    /// The kernel tensor's shape in a parameter table: [O, C·K·K].
    public var weightShape: [Int] { [outChannels, patch] }
}

/// The output columns q whose input column q·S − pad + kx lies inside [0, W): one contiguous range [lo, hi), so the
/// copy loops below run without a bounds test per element (the test made im2col half of a ResNet step).
@inline(__always)
func validColumns(_ s: ConvShape, kx: Int) -> (lo: Int, hi: Int) {
    let first = s.padding - kx                        // q·S ≥ pad − kx
    let last = s.width - 1 + s.padding - kx           // q·S ≤ W − 1 + pad − kx
    let lo = first <= 0 ? 0 : (first + s.stride - 1) / s.stride
    let hi = last < 0 ? 0 : min(s.outWidth, last / s.stride + 1)
    return (min(lo, hi), hi)
}

/// cols[C·K·K, P·Q] = the patches of one image x[C, H, W] (zeros where a patch reaches into the padding).
public func im2col(_ cols: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ s: ConvShape) {
    let P = s.outHeight, Q = s.outWidth, K = s.kernel, S = s.stride
    var row = 0
    for c in 0..<s.inChannels {
        let plane = x + c * s.height * s.width
        for ky in 0..<K {
            for kx in 0..<K {
                let out = cols + row * P * Q
                let (lo, hi) = validColumns(s, kx: kx)
                let shift = kx - s.padding            // input column of output column q is q·S + shift
                for p in 0..<P {
                    let iy = p * S - s.padding + ky
                    let line = out + p * Q
                    if iy < 0 || iy >= s.height {
                        line.update(repeating: 0, count: Q)
                        continue
                    }
                    let src = plane + iy * s.width + shift
                    if lo > 0 { line.update(repeating: 0, count: lo) }
                    if S == 1 {
                        (line + lo).update(from: src + lo, count: hi - lo)
                    } else {
                        for q in lo..<hi { line[q] = src[q * S] }
                    }
                    if hi < Q { (line + hi).update(repeating: 0, count: Q - hi) }
                }
                row += 1
            }
        }
    }
}

/// dx[C, H, W] += col2im(dcols[C·K·K, P·Q]): each column entry added back to the pixel it was copied from.
public func col2imAdd(_ dx: UnsafeMutablePointer<Float>, _ dcols: UnsafePointer<Float>, _ s: ConvShape) {
    let P = s.outHeight, Q = s.outWidth, K = s.kernel, S = s.stride
    var row = 0
    for c in 0..<s.inChannels {
        let plane = dx + c * s.height * s.width
        for ky in 0..<K {
            for kx in 0..<K {
                let src = dcols + row * P * Q
                let (lo, hi) = validColumns(s, kx: kx)
                let shift = kx - s.padding
                for p in 0..<P {
                    let iy = p * S - s.padding + ky
                    guard iy >= 0 && iy < s.height else { continue }
                    let dst = plane + iy * s.width + shift, line = src + p * Q
                    if S == 1 {
                        for q in lo..<hi { dst[q] += line[q] }
                    } else {
                        for q in lo..<hi { dst[q * S] += line[q] }
                    }
                }
                row += 1
            }
        }
    }
}

/// y[N, O, P, Q] = conv(x[N, C, H, W], W[O, C·K·K]) + b[O]. `cols` holds `s.columnCount` floats (scratch).
public func conv2dForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                          _ bias: UnsafePointer<Float>?, cols: UnsafeMutablePointer<Float>, images: Int, _ s: ConvShape,
                          precision: GEMMPrecision = .fp32) {
    let PQ = s.outHeight * s.outWidth
    for n in 0..<images {
        let yn = y + n * s.outputCount
        im2col(cols, x + n * s.inputCount, s)
        if let bias {
            for o in 0..<s.outChannels { (yn + o * PQ).update(repeating: bias[o], count: PQ) }
        }
        gemm(precision, m: s.outChannels, n: PQ, k: s.patch, weight, lda: s.patch, cols, ldb: PQ,
             beta: bias == nil ? 0 : 1, yn, ldc: PQ)
    }
}

/// Gradients of `conv2dForward`, accumulated: dx (skipped when nil: the first layer needs none), dW, db (when given).
/// `cols` and `dcols` hold `s.columnCount` floats each (scratch).
public func conv2dBackward(_ dx: UnsafeMutablePointer<Float>?, _ dWeight: UnsafeMutablePointer<Float>,
                           _ dBias: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                           _ weight: UnsafePointer<Float>, cols: UnsafeMutablePointer<Float>, dcols: UnsafeMutablePointer<Float>,
                           images: Int, _ s: ConvShape, precision: GEMMPrecision = .fp32) {
    let PQ = s.outHeight * s.outWidth
    for n in 0..<images {
        let dyn = dy + n * s.outputCount
        im2col(cols, x + n * s.inputCount, s)
        gemm(precision, transposeB: true, m: s.outChannels, n: s.patch, k: PQ, dyn, lda: PQ, cols, ldb: PQ,
             beta: 1, dWeight, ldc: s.patch)
        if let dBias {
            for o in 0..<s.outChannels {
                let row = dyn + o * PQ
                var sum: Float = 0
                for i in 0..<PQ { sum += row[i] }
                dBias[o] += sum
            }
        }
        if let dx {
            gemm(precision, transposeA: true, m: s.patch, n: PQ, k: s.outChannels, weight, lda: s.patch, dyn, ldb: PQ,
                 beta: 0, dcols, ldc: PQ)
            col2imAdd(dx + n * s.inputCount, dcols, s)
        }
    }
}

/// Naive twin of `conv2dForward` (direct seven-deep loop, double accumulation) for tests.
public func conv2dForwardNaive(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                               _ bias: UnsafePointer<Float>?, images: Int, _ s: ConvShape) {
    let P = s.outHeight, Q = s.outWidth, K = s.kernel
    for n in 0..<images {
        for o in 0..<s.outChannels {
            for p in 0..<P {
                for q in 0..<Q {
                    var acc = Double(bias?[o] ?? 0)
                    for c in 0..<s.inChannels {
                        for ky in 0..<K {
                            for kx in 0..<K {
                                let iy = p * s.stride - s.padding + ky, ix = q * s.stride - s.padding + kx
                                guard iy >= 0 && iy < s.height && ix >= 0 && ix < s.width else { continue }
                                acc += Double(x[n * s.inputCount + (c * s.height + iy) * s.width + ix])
                                    * Double(weight[o * s.patch + (c * K + ky) * K + kx])
                            }
                        }
                    }
                    y[n * s.outputCount + (o * P + p) * Q + q] = Float(acc)
                }
            }
        }
    }
}

/// Naive twin of `conv2dBackward`: the same loop as the forward twin, scattering dy into dx, dW and db.
public func conv2dBackwardNaive(_ dx: UnsafeMutablePointer<Float>?, _ dWeight: UnsafeMutablePointer<Float>,
                                _ dBias: UnsafeMutablePointer<Float>?, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                _ weight: UnsafePointer<Float>, images: Int, _ s: ConvShape) {
    let P = s.outHeight, Q = s.outWidth, K = s.kernel
    for n in 0..<images {
        for o in 0..<s.outChannels {
            for p in 0..<P {
                for q in 0..<Q {
                    let g = dy[n * s.outputCount + (o * P + p) * Q + q]
                    dBias?[o] += g
                    for c in 0..<s.inChannels {
                        for ky in 0..<K {
                            for kx in 0..<K {
                                let iy = p * s.stride - s.padding + ky, ix = q * s.stride - s.padding + kx
                                guard iy >= 0 && iy < s.height && ix >= 0 && ix < s.width else { continue }
                                let xi = n * s.inputCount + (c * s.height + iy) * s.width + ix
                                let wi = o * s.patch + (c * K + ky) * K + kx
                                dWeight[wi] += g * x[xi]
                                dx?[xi] += g * weight[wi]
                            }
                        }
                    }
                }
            }
        }
    }
}

/// out[N, C] = mean over H·W of x[N, C, H, W] (global average pooling).
public func globalAveragePoolForward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, images: Int,
                                     channels: Int, pixels: Int) {
    let inv = 1 / Float(pixels)
    for i in 0..<(images * channels) {
        let plane = x + i * pixels
        var sum: Float = 0
        for j in 0..<pixels { sum += plane[j] }
        out[i] = sum * inv
    }
}

/// dx[N, C, H, W] += dOut[N, C] / (H·W).
public func globalAveragePoolBackward(_ dx: UnsafeMutablePointer<Float>, _ dOut: UnsafePointer<Float>, images: Int,
                                      channels: Int, pixels: Int) {
    let inv = 1 / Float(pixels)
    for i in 0..<(images * channels) {
        let g = dOut[i] * inv, plane = dx + i * pixels
        for j in 0..<pixels { plane[j] += g }
    }
}
