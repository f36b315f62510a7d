/// Row operations along the batch dimension (dimension 0), used to split a
/// request larger than max_batch_size and to reassemble its outputs.
extension Tensor {
    /// Rows `range` of this tensor; dimension 0 must be the batch dimension.
    public func rows(_ range: Range<Int>) throws -> Tensor {
        guard let total = shape.first, range.lowerBound >= 0, range.upperBound <= total else {
            throw InferenceError.internal("cannot take rows \(range) of tensor '\(name)' with shape \(ShapeMath.format(shape))")
        }
        var sliced = self
        sliced.shape[0] = range.count
        if total == 0 { return sliced }
        if dataType == .bytes {
            let elements = try self.elements()
            let perRow = elements.count / total
            sliced.bytes = BytesElements.serialize(Array(elements[(range.lowerBound * perRow)..<(range.upperBound * perRow)]))
        } else {
            let perRow = bytes.count / total
            sliced.bytes = Array(bytes[(range.lowerBound * perRow)..<(range.upperBound * perRow)])
        }
        return sliced
    }

    /// Concatenates tensors of one name, datatype and row shape along dimension 0.
    /// Parts that differ only in dimension 1 (token states: each part padded
    /// to its own longest row, zero past each row's end) are zero-padded to
    /// the longest first.
    public static func concatenatingRows(_ parts: [Tensor]) throws -> Tensor {
        var parts = parts
        if let first = parts.first, first.dataType != .bytes, first.shape.count >= 3,
           parts.allSatisfy({ $0.shape.count == first.shape.count && $0.shape.dropFirst(2) == first.shape.dropFirst(2) }) {
            let longest = parts.map { $0.shape[1] }.max() ?? 0
            parts = parts.map { $0.paddingDimension1(to: longest) }
        }
        guard var result = parts.first else { throw InferenceError.internal("nothing to concatenate") }
        for part in parts.dropFirst() {
            guard part.name == result.name, part.dataType == result.dataType,
                  part.shape.dropFirst() == result.shape.dropFirst() else {
                throw InferenceError.internal(
                    "cannot concatenate output '\(part.name)' \(ShapeMath.format(part.shape)) with \(ShapeMath.format(result.shape))")
            }
            result.shape[0] += part.shape[0]
            result.bytes.append(contentsOf: part.bytes)
        }
        return result
    }

    /// Zeros appended to every row along dimension 1, up to `length`.
    func paddingDimension1(to length: Int) -> Tensor {
        guard shape.count >= 3, shape[1] < length, let rows = shape.first, rows > 0 else { return self }
        let rowBytes = bytes.count / rows, inner = rowBytes / max(shape[1], 1)
        var padded = self
        padded.shape[1] = length
        padded.bytes = []
        padded.bytes.reserveCapacity(rows * length * inner)
        for row in 0..<rows {
            padded.bytes.append(contentsOf: bytes[(row * rowBytes)..<((row + 1) * rowBytes)])
            padded.bytes.append(contentsOf: repeatElement(0, count: (length - shape[1]) * inner))
        }
        return padded
    }
}
