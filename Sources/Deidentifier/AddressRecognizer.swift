import InferenceCore

/// Geographic units smaller than a state: street addresses ("1200 W Oak
/// Street, Apt 4B"), PO boxes, a city before a state ("Springfield, IL"), a
/// county, places after "lives in"/"resides in", and ZIP codes after a state
/// or a ZIP cue. The state itself is not an identifier under Safe Harbor.
enum AddressRecognizer {
    static let streetSuffixes: Set<String> = [
        "street", "st", "avenue", "ave", "road", "rd", "boulevard", "blvd", "lane", "ln", "drive", "dr", "court", "ct",
        "way", "place", "pl", "circle", "cir", "terrace", "ter", "parkway", "pkwy", "highway", "hwy", "square", "sq",
        "trail", "trl", "plaza", "loop", "run", "row", "path", "pike", "alley", "crossing", "point", "ridge", "hill", "hills",
        "heights", "park", "view", "station", "fort", "landing", "mall", "manor", "mill", "mills", "pass", "port", "springs", "track",
        "turnpike", "valley", "village", "walk", "green", "grove", "harbor", "island", "junction", "key", "knoll", "lake", "lakes",
        "meadow", "meadows", "mission", "motorway", "oval", "pines", "prairie", "ranch", "shore", "shores", "spur", "stream",
        "summit", "tunnel", "underpass", "union", "vista", "wells", "camp", "canyon", "cape", "center", "cliff", "club", "common",
        "corner", "corners", "course", "cove", "creek", "crest", "dale", "dam", "divide", "estate", "estates", "expressway",
        "extension", "falls", "ferry", "field", "fields", "flat", "flats", "ford", "forest", "forge", "fork", "freeway", "garden",
        "gardens", "gateway", "glen", "haven", "hollow", "inlet", "light", "lock", "lodge", "neck", "orchard", "overpass",
        "radial", "rapids", "rest", "shoal", "skyway", "spring", "stravenue", "throughway", "trace", "trafficway", "viaduct",
        "ville", "well", "bypass", "causeway", "club", "bluff", "bluffs", "bottom", "branch", "bridge", "brook", "brooks", "burg", "burgs",
        "lock", "ramp", "glen", "cliff", "passage", "via", "crescent", "close", "mews", "rapid", "wall", "spur", "stravenue", "mountain", "mount", "plain", "route", "shoal", "isle", "lane", "curve", "gateway", "parkways",
    ]

    /// A street suffix, singular or plural ("Harbors", "Locks").
    static func isStreetSuffix(_ lower: String) -> Bool {
        streetSuffixes.contains(lower) || (lower.hasSuffix("s") && streetSuffixes.contains(String(lower.dropLast())))
    }
    static let unitWords: Set<String> = ["apt", "apartment", "suite", "ste", "unit", "#", "room", "rm", "floor", "fl", "bldg", "building"]
    static let directions: Set<String> = ["n", "s", "e", "w", "ne", "nw", "se", "sw", "north", "south", "east", "west"]
    /// Lower-cased, as tokens carry them; matched only where the token is in capitals.
    static let stateAbbreviations: Set<String> = Set([
        "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD",
        "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC",
        "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC", "PR", "GU", "VI", "AS", "MP", "AA", "AE", "AP",
    ].map { $0.lowercased() })
    static let stateNames: Set<String> = [
        "alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut", "delaware", "florida", "georgia",
        "hawaii", "idaho", "illinois", "indiana", "iowa", "kansas", "kentucky", "louisiana", "maine", "maryland", "massachusetts",
        "michigan", "minnesota", "mississippi", "missouri", "montana", "nebraska", "nevada", "ohio", "oklahoma", "oregon",
        "pennsylvania", "tennessee", "texas", "utah", "vermont", "virginia", "washington", "wisconsin", "wyoming",
    ]
    static let twoWordStates: Set<String> = ["new hampshire", "new jersey", "new mexico", "new york", "north carolina",
                                             "north dakota", "rhode island", "south carolina", "south dakota", "west virginia"]
    static let placeCues: [[String]] = [["lives", "in"], ["resides", "in"], ["living", "in"], ["moved", "to"], ["relocated", "to"],
                                        ["lives", "at"], ["born", "in"], ["hometown", "of"], ["city", "of"], ["from"], ["town", "of"],
                                        ["visiting", "from"], ["transferred", "from"], ["returned", "from"], ["traveled", "to"],
                                        ["facility", "in"], ["home", "in"], ["resident", "of"]]

    static func findAll(_ text: ScannedText, lexicon: Lexicon, into found: inout [DetectedEntity]) {
        let t = text.tokens
        var i = 0
        while i < t.count {
            if let (start, end, last) = street(text, i) ?? poBox(text, i) {
                found.append(DetectedEntity(type: .location, start: start, end: end, score: 0.85, recognizer: .address))
                // ", Phyllisfurt" after an address is its city, with or without a state.
                var k = last + 1
                if text.isSymbol(k, ",") || (k < t.count && t[k].lower == "in") {
                    k += 1
                    var cityLast = k - 1
                    while cityLast + 1 < t.count, cityLast + 1 - k < 3, t[cityLast + 1].kind == .letters, t[cityLast + 1].capitalized,
                          !lexicon.isStructuralWord(t[cityLast + 1].lower), isStateAt(text, cityLast + 1) == nil {
                        cityLast += 1
                    }
                    if cityLast >= k {
                        found.append(DetectedEntity(type: .location, start: t[k].start, end: t[cityLast].end, score: 0.85, recognizer: .address))
                    }
                }
                i = last + 1
                continue
            }
            i += 1
        }
        citiesAndZips(text, lexicon: lexicon, &found)
    }

    /// A house number, up to four words, a street suffix, then an optional unit.
    static func street(_ text: ScannedText, _ i: Int) -> (Int, Int, Int)? {
        let t = text.tokens
        guard t[i].kind == .digits || (t[i].kind == .mixed && t[i].length <= 6), t[i].length <= 6,
              !(i > 0 && text.touchesPrevious(i) && t[i - 1].kind != .symbol) else { return nil }
        var k = i + 1
        var words = 0
        while k < t.count, words < 5 {
            let token = t[k]
            // An address stays on its line and holds no heading word ("15\n\nDear Dr.").
            if text.scalars[t[k - 1].end..<token.start].contains("\n") || (token.kind == .letters && Lexicon.structuralWords.contains(token.lower)
                && !isStreetSuffix(token.lower) && !directions.contains(token.lower)) { return nil }
            let isWord = (token.kind == .letters && (token.capitalized || directions.contains(token.lower)))
                || (token.kind == .mixed && ["st", "nd", "rd", "th"].contains(String(token.lower.suffix(2))))
            guard isWord else { return nil }
            words += 1
            if words >= 2 || (words == 1 && token.kind == .mixed) {
                if isStreetSuffix(token.lower), words >= 2 {
                    var last = k
                    if text.isSymbol(last + 1, "."), text.touchesPrevious(last + 1) { last += 1 }
                    guard let unitLast = withUnit(text, last) else { return nil }
                    return (t[i].start, t[unitLast].end, unitLast)
                }
            }
            if text.isSymbol(k + 1, "."), text.touchesPrevious(k + 1), token.length <= 2 { k += 2 } else { k += 1 }
        }
        return nil
    }

    /// Extends an address past ", Apt 4B", " Suite 200", " #12".
    static func withUnit(_ text: ScannedText, _ last: Int) -> Int? {
        let t = text.tokens
        var k = last + 1
        if text.isSymbol(k, ",") { k += 1 }
        guard k < t.count, unitWords.contains(t[k].lower) else { return last }
        var j = k + 1
        if text.isSymbol(j, ".") || text.isSymbol(j, "#") { j += 1 }
        guard j < t.count, t[j].kind != .symbol, t[j].length <= 6 else { return last }
        return j
    }

    static func poBox(_ text: ScannedText, _ i: Int) -> (Int, Int, Int)? {
        let t = text.tokens
        var k = i
        if text.matches(["p", ".", "o", ".", "box"], at: i) { k = i + 5 }
        else if text.matches(["po", "box"], at: i) { k = i + 2 }
        else { return nil }
        guard k < t.count, t[k].kind == .digits else { return nil }
        return (t[i].start, t[k].end, k)
    }

    static func isStateAt(_ text: ScannedText, _ k: Int) -> Int? {
        let t = text.tokens
        guard k < t.count, t[k].kind == .letters else { return nil }
        if t[k].length == 2, t[k].allCaps, stateAbbreviations.contains(t[k].lower) { return k }
        if t[k].capitalized, stateNames.contains(t[k].lower) { return k }
        if k + 1 < t.count, t[k].capitalized, twoWordStates.contains(t[k].lower + " " + t[k + 1].lower) { return k + 1 }
        return nil
    }

    static func citiesAndZips(_ text: ScannedText, lexicon: Lexicon, _ found: inout [DetectedEntity]) {
        let t = text.tokens
        for i in t.indices {
            // "Springfield, IL 62704" / "Lake Forest, Illinois": the city before a state.
            // ", MD" and ", PA" after a name are credentials, not states, unless a ZIP code follows.
            if text.isSymbol(i, ","), let stateLast = isStateAt(text, i + 1),
               !(["md", "pa"].contains(t[i + 1].lower) && zipCode(text, stateLast + 1) == nil) {
                var first = i - 1
                var count = 0
                while first >= 0, count < 3, t[first].kind == .letters, t[first].capitalized, !t[first].allCaps,
                      !lexicon.isStructuralWord(t[first].lower), !isStreetSuffix(t[first].lower) || lexicon.isPlaceWord(t[first].lower),
                      !text.scalars[t[first].end..<t[first + 1].start].contains("\n") {
                    first -= 1
                    count += 1
                }
                if count > 0 {
                    found.append(DetectedEntity(type: .location, start: t[first + 1].start, end: t[i - 1].end, score: 0.85, recognizer: .address))
                }
                if let zip = zipCode(text, stateLast + 1) {
                    found.append(DetectedEntity(type: .zipCode, start: zip.0, end: zip.1, score: 0.95, recognizer: .address))
                }
            } else if let stateLast = isStateAt(text, i), t[i].length == 2, let zip = zipCode(text, stateLast + 1) {
                found.append(DetectedEntity(type: .zipCode, start: zip.0, end: zip.1, score: 0.95, recognizer: .address))
            }
            // "ZIP 60614", "zip code: 60614-1234", "postal code 60614".
            if ["zip", "postal"].contains(t[i].lower) {
                var k = i + 1
                while k < t.count, k <= i + 3, [":", "code", "#", "-"].contains(t[k].lower) { k += 1 }
                if let zip = zipCode(text, k) {
                    found.append(DetectedEntity(type: .zipCode, start: zip.0, end: zip.1, score: 0.95, recognizer: .context))
                }
            }
            // "Cook County", "County of Marin".
            if t[i].lower == "county", t[i].capitalized {
                var first = i - 1
                while first >= 0, i - first <= 2, t[first].kind == .letters, t[first].capitalized, !lexicon.isStructuralWord(t[first].lower) { first -= 1 }
                if first < i - 1 {
                    found.append(DetectedEntity(type: .location, start: t[first + 1].start, end: t[i].end, score: 0.85, recognizer: .address))
                }
            }
            // "lives in Riverside", "from East Lansing".
            for cue in placeCues where text.matches(cue, at: i) {
                var k = i + cue.count
                if k < t.count, t[k].lower == "the" { k += 1 }
                var last = k - 1
                while last + 1 < t.count, last + 1 - k < 3, t[last + 1].kind == .letters, t[last + 1].capitalized,
                      !lexicon.isSafe(t[last + 1].lower) || lexicon.isPlaceWord(t[last + 1].lower), !lexicon.isStructuralWord(t[last + 1].lower) {
                    last += 1
                }
                if last >= k, isStateAt(text, k) == nil || last > k {
                    found.append(DetectedEntity(type: .location, start: t[k].start, end: t[last].end, score: 0.7, recognizer: .address))
                }
                break
            }
        }
    }

    /// Five digits, or five and four joined by a hyphen.
    static func zipCode(_ text: ScannedText, _ k: Int) -> (Int, Int)? {
        let t = text.tokens
        guard k < t.count, t[k].kind == .digits, t[k].length == 5 else { return nil }
        if text.isSymbol(k + 1, "-"), text.touchesPrevious(k + 1), text.touchesPrevious(k + 2), k + 2 < t.count,
           t[k + 2].kind == .digits, t[k + 2].length == 4 {
            return (t[k].start, t[k + 2].end)
        }
        return (t[k].start, t[k].end)
    }
}
