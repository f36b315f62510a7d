// batch-server-tokenize: runs BatchServer's WordPiece tokenizer on JSON
// strings, one per line of standard input, and prints the token ids as a JSON
// array per line. For checking the tokenizer against Hugging Face's and for
// operators who want to see what the server will feed a model.
//   batch-server-tokenize VOCAB_FILE [MAX_LENGTH] < strings.jsonl
import Foundation
import TransformerModel

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: batch-server-tokenize VOCAB_FILE [MAX_LENGTH] < strings.jsonl\n".utf8))
    exit(2)
}
let tokenizer = try WordPieceTokenizer(vocabularyFile: arguments[1])
let maxLength = arguments.count > 2 ? Int(arguments[2]) ?? 512 : 512
while let line = readLine(strippingNewline: true) {
    guard let text = try? JSONDecoder().decode(String.self, from: Data(line.utf8)) else {
        FileHandle.standardError.write(Data("each line must be one JSON string\n".utf8))
        exit(1)
    }
    let ids = tokenizer.encode(text, maxLength: maxLength)
    print("[" + ids.map(String.init).joined(separator: ",") + "]")
}
