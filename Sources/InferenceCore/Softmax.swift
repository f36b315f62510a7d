import Foundation

/// Softmax of one row of logits (shifted by the largest, so large logits do
/// not overflow).
public enum Softmax {
    public static func probabilities<C: Collection>(_ logits: C) -> [Float] where C.Element == Float {
        guard let top = logits.max() else { return [] }
        let exps = logits.map { Foundation.exp($0 - top) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }
}
