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
    public static func concatenatingRows(_ parts: [Tensor]) throws -> Tensor {
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
}
