import Foundation

/// Triton's classification extension: an output requested with
/// `classification: N` comes back as BYTES holding the top N classes of each
/// batch row as "value:index[:label]", labels from the output's label file.
public enum Classification {
    public static func topClasses(_ tensor: Tensor, count: Int, labels: [String], batched: Bool) throws -> Tensor {
        let values: [Double]
        switch tensor.dataType {
        case .fp32: values = try tensor.values(as: Float.self).map(Double.init)
        case .fp64: values = try tensor.values(as: Double.self)
        case .int32: values = try tensor.values(as: Int32.self).map(Double.init)
        case .int64: values = try tensor.values(as: Int64.self).map(Double.init)
        default:
            throw InferenceError.invalidArgument("output '\(tensor.name)' is \(tensor.dataType.rawValue); classification needs a numeric output")
        }
        let rows = batched ? (tensor.shape.first ?? 1) : 1
        let classes = rows > 0 ? values.count / rows : 0
        let kept = min(count, classes)
        var elements: [[UInt8]] = []
        for row in 0..<rows {
            let slice = values[(row * classes)..<((row + 1) * classes)]
            let order = slice.indices.sorted { slice[$0] != slice[$1] ? slice[$0] > slice[$1] : $0 < $1 }
            for index in order.prefix(kept) {
                let classIndex = index - row * classes
                var text = String(format: "%f:%d", slice[index], classIndex)
                if classIndex < labels.count { text += ":" + labels[classIndex] }
                elements.append(Array(text.utf8))
            }
        }
        return Tensor(name: tensor.name, shape: batched ? [rows, kept] : [kept], elements: elements)
    }
}
