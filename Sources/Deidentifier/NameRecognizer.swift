import InferenceCore

/// Person names in the Philter style: capitalised words after a cue (a title,
/// a role, a relation, a signature), before a credential (", MD"), or from
/// the census name lists where the word is not on the safe list of common
/// words; a found name extends over the capitalised words that follow it and
/// are not known to be safe.
enum NameRecognizer {
    static let titles: Set<String> = ["dr", "doctor", "mr", "mrs", "ms", "miss", "mx", "prof", "professor", "nurse"]
    static let cues: [[String]] = [
        ["patient", "name"], ["patient"], ["pt"], ["name"], ["seen", "by"], ["signed", "by"], ["electronically", "signed", "by"],
        ["dictated", "by"], ["reviewed", "by"], ["referred", "by"], ["attending"], ["resident"], ["physician"], ["surgeon"],
        ["pcp"], ["provider"], ["son"], ["daughter"], ["wife"], ["husband"], ["mother"], ["father"], ["sister"], ["brother"],
        ["spouse"], ["partner"], ["contact"], ["emergency", "contact"], ["dear"], ["sincerely"], ["regards"], ["cc"],
        ["caregiver"], ["guardian"], ["grandson"], ["granddaughter"], ["niece"], ["nephew"], ["friend"], ["from"], ["to"],
        ["hi"], ["hello"], ["re"], ["thanks"], ["best"], ["referring"], ["patient", ":"], ["signed"], ["with"], ["for"], ["this", "is"], ["i", "am"],
        ["mrs", "."], ["ms", "."], ["mr", "."], ["dr", "."],
    ]
    static let cuesByFirstWord: [String: [[String]]] = {
        var table: [String: [[String]]] = [:]
        for cue in cues { table[cue[0], default: []].append(cue) }
        return table.mapValues { $0.sorted { $0.count > $1.count } }
    }()
    static let credentials: Set<String> = ["md", "do", "rn", "np", "pa", "phd", "dds", "dmd", "lpn", "cnm", "crna", "pharmd", "facs", "facp", "mph", "lcsw"]
    static let cueFillers: Set<String> = [":", ",", "-", "is", "named", "'", "s", "(", "the"]

    static func findAll(_ text: ScannedText, lexicon: Lexicon, into found: inout [DetectedEntity]) {
        let t = text.tokens
        signatures(text, lexicon, &found)
        var i = 0
        while i < t.count {
            if let (first, last, score) = afterTitle(text, i, lexicon) ?? afterCue(text, i, lexicon) ?? fromLists(text, i, lexicon) {
                let end = extend(text, last, lexicon)
                found.append(DetectedEntity(type: .person, start: t[first].start, end: t[end].end, score: score,
                                            recognizer: score >= 0.85 && !isListOnly(text, first, lexicon) ? .nameCue : .nameList))
                i = end + 1
                continue
            }
            if let (first, last) = beforeCredential(text, i, lexicon) {
                found.append(DetectedEntity(type: .person, start: t[first].start, end: t[last].end, score: 0.9, recognizer: .nameCue))
            }
            i += 1
        }
    }

    static func isListOnly(_ text: ScannedText, _ first: Int, _ lexicon: Lexicon) -> Bool {
        first == 0 || !(titles.contains(text.tokens[first - 1].lower) || text.isSymbol(first - 1, ".") || cuesByFirstWord[text.tokens[first - 1].lower] != nil
                        || text.isSymbol(first - 1, ":"))
    }

    /// A word that can be part of a name: capitalised letters, not a heading or clinical word.
    static func isNameWord(_ text: ScannedText, _ k: Int, _ lexicon: Lexicon) -> Bool {
        guard k >= 0, k < text.tokens.count else { return false }
        let token = text.tokens[k]
        guard token.kind == .letters, token.capitalized, !lexicon.isStructuralWord(token.lower), !lexicon.allowList.contains(token.lower) else { return false }
        if isEponym(text, k) { return false }
        // Capitals are names only where the lists know them ("SMITH, JOHN"), never two letters ("IP", "OK").
        if token.allCaps { return token.length > 2 && (lexicon.firstNames.contains(token.lower) || lexicon.lastNames.contains(token.lower)) }
        return true
    }

    /// "Murphy's sign", "Wilson disease", "Barrett's esophagus": named after a person, not one.
    static func isEponym(_ text: ScannedText, _ k: Int) -> Bool {
        var j = k + 1
        if text.isSymbol(j, "'"), text.lower(j + 1) == "s" { j += 2 }
        else if text.isSymbol(j, "'") || text.isSymbol(j, "’") { j += 1 }
        if let next = text.lower(j), Lexicon.eponymHeads.contains(next) { return true }
        // "Guillain-Barre syndrome": a hyphenated pair.
        if text.isSymbol(k + 1, "-"), let after = text.lower(k + 3), Lexicon.eponymHeads.contains(after) { return true }
        if k >= 2, text.isSymbol(k - 1, "-"), let after = text.lower(k + 1), Lexicon.eponymHeads.contains(after) { return true }
        return false
    }

    /// An initial: one capital letter and a period ("J.").
    static func isInitial(_ text: ScannedText, _ k: Int) -> Bool {
        guard k >= 0, k + 1 < text.tokens.count else { return false }
        let token = text.tokens[k]
        return token.kind == .letters && token.length == 1 && token.capitalized && text.isSymbol(k + 1, ".") && text.touchesPrevious(k + 1)
    }

    /// The last token of a name word at k, across hyphens and apostrophes (O'Brien, Smith-Jones).
    static func nameWordEnd(_ text: ScannedText, _ k: Int, _ lexicon: Lexicon) -> Int? {
        if isInitial(text, k) { return k + 1 }
        guard isNameWord(text, k, lexicon) else { return nil }
        var last = k
        while last + 2 < text.tokens.count, text.isSymbol(last + 1, "-") || text.isSymbol(last + 1, "'"),
              text.touchesPrevious(last + 1), text.touchesPrevious(last + 2), text.tokens[last + 2].kind == .letters,
              text.tokens[last + 2].capitalized {
            last += 2
        }
        return last
    }

    /// "Dr. Amelia Chen", "Mrs Okafor": a title then one to three name words.
    static func afterTitle(_ text: ScannedText, _ i: Int, _ lexicon: Lexicon) -> (Int, Int, Double)? {
        guard titles.contains(text.tokens[i].lower), text.tokens[i].capitalized else { return nil }
        var k = i + 1
        if text.isSymbol(k, ".") { k += 1 }
        if let last = nameWordEnd(text, k, lexicon) { return (k, last, 0.9) }
        // After a title even a month or a common word is a surname ("Dr. May", "Dr. Ward").
        guard k < text.tokens.count, text.tokens[k].kind == .letters, text.tokens[k].capitalized, !text.tokens[k].allCaps,
              text.tokens[k].length > 1, !["the", "and", "of"].contains(text.tokens[k].lower) else { return nil }
        return (k, k, 0.85)
    }

    /// "Patient: Maria Lopez", "son Daniel", "signed by Kevin O'Neil".
    static func afterCue(_ text: ScannedText, _ i: Int, _ lexicon: Lexicon) -> (Int, Int, Double)? {
        let t = text.tokens
        guard let candidates = cuesByFirstWord[t[i].lower], let cue = candidates.first(where: { text.matches($0, at: i) }) else { return nil }
        var k = i + cue.count
        var skipped = 0
        while k < t.count, skipped < 2, cueFillers.contains(t[k].lower) { k += 1; skipped += 1 }
        guard k < t.count, let last = nameWordEnd(text, k, lexicon) else { return nil }
        // Weak cues ("from", "to", "contact") need a word that is a known name or not a common word.
        let word = t[k].lower
        let known = lexicon.firstNames.contains(word) || lexicon.lastNames.contains(word)
        if !known && lexicon.isSafe(word) && !isInitial(text, k) { return nil }
        if ["from", "to", "contact", "friend", "partner", "hi", "hello", "thanks", "best", "referring", "with", "for", "this", "i"].contains(cue[0])
            && !lexicon.firstNames.contains(word) { return nil }
        return (k, last, known || !lexicon.isSafe(word) ? 0.85 : 0.6)
    }

    /// No line break between tokens a and b: a name does not run on past the end of its line.
    static func sameLine(_ text: ScannedText, _ a: Int, _ b: Int) -> Bool {
        guard a < b, b < text.tokens.count else { return true }
        return !text.scalars[text.tokens[a].end..<text.tokens[b].start].contains("\n")
    }

    /// "Jonathan Reyes" from the lists: a first name, then a last name or a word not known to be safe.
    static func fromLists(_ text: ScannedText, _ i: Int, _ lexicon: Lexicon) -> (Int, Int, Double)? {
        let t = text.tokens
        // "779 Carter Burgs" is a street, not a person.
        if i > 0, t[i - 1].kind == .digits { return nil }
        guard let firstLast = nameWordEnd(text, i, lexicon), !isInitial(text, i) else { return nil }
        let word = t[i].lower
        if lexicon.firstNames.contains(word) {
            var k = firstLast + 1
            if isInitial(text, k) { k += 2 }
            else if k + 1 < t.count, t[k].kind == .letters, t[k].length == 1, t[k].capitalized, nameWordEnd(text, k + 1, lexicon) != nil { k += 1 }
            if sameLine(text, firstLast, k), let last = nameWordEnd(text, k, lexicon), lexicon.lastNames.contains(t[k].lower) || !lexicon.isSafe(t[k].lower) {
                return (i, last, 0.85)
            }
            if !lexicon.isSafe(word) && !atSentenceStart(text, i) { return (i, firstLast, 0.6) }
            // "Scott, a 38-year-old man", "Stanley is a 91-yr-old", "Victor (son)".
            let next = text.lower(firstLast + 1) ?? ""
            if !lexicon.isSafe(word), [",", "is", "was", "has", "reports", "presents", "denies", "("].contains(next) { return (i, firstLast, 0.7) }
            return nil
        }
        // "Reyes, Jonathan": last name, comma, first name.
        if lexicon.lastNames.contains(word), !lexicon.isSafe(word), text.isSymbol(firstLast + 1, ","),
           let firstEnd = nameWordEnd(text, firstLast + 2, lexicon), lexicon.firstNames.contains(t[firstLast + 2].lower) {
            return (i, firstEnd, 0.85)
        }
        // "J. Reyes": an initial then a last name.
        if i > 1, isInitial(text, i - 2), lexicon.lastNames.contains(word), !lexicon.isSafe(word) {
            return (i - 2, firstLast, 0.85)
        }
        return nil
    }

    /// "Priya Natarajan, MD": name words before a credential.
    static func beforeCredential(_ text: ScannedText, _ i: Int, _ lexicon: Lexicon) -> (Int, Int)? {
        guard isNameWord(text, i, lexicon) || isInitial(text, i) else { return nil }
        var last = i
        var words = 0
        while words < 4, let end = nameWordEnd(text, last, lexicon) {
            words += 1
            if credentialFollows(text, end + 1) { return (i, end) }
            last = end + 1
        }
        return nil
    }

    static func credentialFollows(_ text: ScannedText, _ k: Int) -> Bool {
        var j = k
        if text.isSymbol(j, ",") { j += 1 }
        // "M.D.", "D.O.", "R.N." in letters and periods.
        if j + 2 < text.tokens.count, text.tokens[j].length == 1, text.isSymbol(j + 1, "."), text.tokens[j + 2].length == 1,
           credentials.contains(text.tokens[j].lower + text.tokens[j + 2].lower) { return true }
        guard j < text.tokens.count, text.tokens[j].allCaps || text.tokens[j].lower == "phd" || text.tokens[j].lower == "pharmd" else { return false }
        return credentials.contains(text.tokens[j].lower)
    }

    /// Extends a name over following name words that are known names or not safe, and initials.
    static func extend(_ text: ScannedText, _ last: Int, _ lexicon: Lexicon) -> Int {
        var end = last
        var added = 0
        while added < 3 {
            let k = end + 1
            guard sameLine(text, end, k) else { break }
            if isInitial(text, k) { end = k + 1; added += 1; continue }
            // A middle initial without its period: "Kelsey A Smith-Johnson".
            if k + 1 < text.tokens.count, text.tokens[k].kind == .letters, text.tokens[k].length == 1, text.tokens[k].capitalized,
               let after = nameWordEnd(text, k + 1, lexicon) {
                end = after; added += 2; continue
            }
            // "Gonzalez, Amber": a surname, a comma and a first name.
            if added == 0, text.isSymbol(k, ","), lexicon.lastNames.contains(text.tokens[end].lower), let firstEnd = nameWordEnd(text, k + 1, lexicon),
               lexicon.firstNames.contains(text.tokens[k + 1].lower) {
                end = firstEnd; added += 1; continue
            }
            guard let wordEnd = nameWordEnd(text, k, lexicon) else { break }
            let word = text.tokens[k].lower
            guard lexicon.lastNames.contains(word) || lexicon.firstNames.contains(word) || !lexicon.isSafe(word) else { break }
            end = wordEnd
            added += 1
        }
        return end
    }

    /// A known first name alone on its line: a message's signature ("Thanks,\nRalph").
    static func signatures(_ text: ScannedText, _ lexicon: Lexicon, _ found: inout [DetectedEntity]) {
        let t = text.tokens
        for (i, token) in t.enumerated() where token.kind == .letters && token.capitalized && lexicon.firstNames.contains(token.lower) {
            let before = i == 0 ? text.scalars[0..<token.start] : text.scalars[t[i - 1].end..<token.start]
            let afterEnd = i + 1 < t.count ? t[i + 1].start : text.scalars.count
            guard before.contains("\n") || i == 0, text.scalars[token.end..<afterEnd].contains("\n") || i + 1 == t.count else { continue }
            found.append(DetectedEntity(type: .person, start: token.start, end: token.end, score: 0.7, recognizer: .nameList))
        }
    }

    static func atSentenceStart(_ text: ScannedText, _ i: Int) -> Bool {
        guard i > 0 else { return true }
        let previous = text.tokens[i - 1]
        if previous.kind == .symbol, [".", "!", "?", ":", "\"", "-", "•", "*"].contains(previous.lower) { return true }
        return text.scalars[previous.end..<text.tokens[i].start].contains("\n")
    }
}
