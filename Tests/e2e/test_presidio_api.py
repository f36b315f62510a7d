"""The Presidio-compatible de-identification routes on the HTTP port:
/analyze, /anonymize, /deanonymize, /supportedentities, /recognizers,
/anonymizers, /deanonymizers. Request and response shapes, field names,
item order and error bodies as Presidio's own REST apps
(presidio-analyzer/app.py, presidio-anonymizer/app.py) give them; Presidio's
documented examples (docs/api-docs/api-docs.yml, docs/anonymizer/index.md,
e2e-tests/tests/test_api_*.py); and spans that a correct detector must find,
with offsets as Python string indices (Unicode scalars), as Presidio reports
them.

Where Presidio answers a client's mistake with 500 (/analyze without text or
language, an unsupported language, a body that is not JSON) we answer 4xx,
with Presidio's message where it has a specific one. /deanonymize is served
only with access control, to a token granting `reidentify`; its tests run on
a second server that has tokens (`reidentifier`)."""

import base64
import hashlib
import concurrent.futures
import json
import re

import pytest
import requests

from conftest import MODEL_REPOSITORY, RunningServer

# Presidio's names where Presidio has the entity, then ours.
PRESIDIO_ENTITIES = ["PERSON", "LOCATION", "DATE_TIME", "PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN", "IP_ADDRESS",
                     "URL", "US_DRIVER_LICENSE", "MEDICAL_LICENSE", "CREDIT_CARD"]
OUR_ENTITIES = ["MEDICAL_RECORD_NUMBER", "HEALTH_PLAN_NUMBER", "ACCOUNT_NUMBER", "DEVICE_ID", "VEHICLE_ID",
                "ZIP_CODE", "AGE_OVER_89", "FAX_NUMBER"]

# One /analyze result: json.dumps(..., sort_keys=True) of RecognizerResult less recognition_metadata.
ANALYZE_FIELDS = {"analysis_explanation", "end", "entity_type", "score", "start"}
# AnalysisExplanation as docs/api-docs/api-docs.yml lists it (newer Presidio adds regex_flags).
EXPLANATION_FIELDS = {"recognizer", "pattern_name", "pattern", "original_score", "score", "textual_explanation",
                      "score_context_improvement", "supportive_context_word", "validation_result"}
# One /anonymize or /deanonymize item (OperatorResult); presidio-anonymizer 2.2.365+ adds "score".
ITEM_FIELDS = {"start", "end", "entity_type", "text", "operator"}
ITEM_OPTIONAL_FIELDS = {"score"}

# Presidio's documented /analyze example (api-docs.yml "Minimal Request", docs/samples/docker/index.md).
DOC_ANALYZE_TEXT = "John Smith drivers license is AC432223"

# Presidio's documented /anonymize example (docs/anonymizer/index.md, docs/samples/docker/index.md,
# e2e-tests/tests/test_api_anonymizer.py): FIRST_NAME and LAST_NAME lie inside NAME and are dropped.
DOC_TEXT = "hello world, my name is Jane Doe. My number is: 034453334"
DOC_RESULTS = [
    {"start": 24, "end": 32, "score": 0.8, "entity_type": "NAME"},
    {"start": 24, "end": 28, "score": 0.8, "entity_type": "FIRST_NAME"},
    {"start": 29, "end": 32, "score": 0.6, "entity_type": "LAST_NAME"},
    {"start": 48, "end": 57, "score": 0.95, "entity_type": "PHONE_NUMBER"},
]

# Presidio's documented /deanonymize example (api-docs.yml, docs/anonymizer/index.md).
DOC_CIPHERTEXT = "My name is S184CMt9Drj7QaKQ21JTrpYzghnboTF9pn/neN8JME0="
DOC_KEY = "WmZq4t7w!z%C&F)J"

SALT = "0123456789abcdef"  # 16 bytes: Presidio's minimum

# Tokens of the reidentifier server: /deanonymize needs the reidentify group.
REIDENTIFY_TOKEN = "reidentify-token-0123456789abcdef"
TOKENS = {"tokens": [{"name": "privacy-officer", "token": REIDENTIFY_TOKEN,
                      "groups": ["inference", "reidentify", "metadata"]}]}


@pytest.fixture(scope="module")
def reidentifier(tmp_path_factory):
    """A server with access control, for /deanonymize (the module's other server, `server`, has none)."""
    directory = tmp_path_factory.mktemp("reidentifier")
    tokens = directory / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    running = RunningServer(MODEL_REPOSITORY, ["--auth-tokens-file", str(tokens)],
                            log_path=directory / "server.log").wait_live()
    running.token = REIDENTIFY_TOKEN
    yield running
    code = running.stop()
    assert code == 0, f"batch-server exited with {code}:\n{running.read_log()}"


# ---------------------------------------------------------------- helpers


def post(server, path, body=None, data=None, content_type="application/json"):
    payload = data if data is not None else json.dumps(body)
    headers = {"Content-Type": content_type}
    if getattr(server, "token", None):
        headers["Authorization"] = f"Bearer {server.token}"
    return requests.post(f"{server.base}{path}", data=payload, headers=headers, timeout=30)


def get(server, path, **params):
    return requests.get(f"{server.base}{path}", params=params, timeout=30)


def analyze(server, text, **fields):
    response = post(server, "/analyze", {"text": text, "language": "en", **fields})
    assert response.status_code == 200, response.text
    return response.json()


def anonymize(server, text, analyzer_results, anonymizers=None):
    body = {"text": text, "analyzer_results": analyzer_results}
    if anonymizers is not None:
        body["anonymizers"] = anonymizers
    response = post(server, "/anonymize", body)
    assert response.status_code == 200, response.text
    return response.json()


def deanonymize(server, text, anonymizer_results, deanonymizers):
    response = post(server, "/deanonymize",
                    {"text": text, "deanonymizers": deanonymizers, "anonymizer_results": anonymizer_results})
    assert response.status_code == 200, response.text
    return response.json()


def span(text, substring):
    """(start, end) of substring in text, in Python string indices."""
    start = text.index(substring)
    return start, start + len(substring)


def spans(results, entity_type):
    return {(r["start"], r["end"]) for r in results if r["entity_type"] == entity_type}


def found(results):
    """What the analyzer found, for assertion messages."""
    return [(r["entity_type"], r["start"], r["end"]) for r in results]


def assert_finds(results, entity_type, text, substring):
    assert span(text, substring) in spans(results, entity_type), \
        f"{entity_type} {substring!r} at {span(text, substring)} not in {found(results)}"


def result(entity_type, text, substring, score=0.8):
    """An analyzer result for substring of text."""
    start, end = span(text, substring)
    return {"start": start, "end": end, "score": score, "entity_type": entity_type}


def splice(text, edits):
    """text with each (start, end, replacement) applied; edits must not overlap."""
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def expected_items(edits):
    """Presidio's items for non-overlapping (start, end, replacement, entity_type, operator) edits:
    positions of each replacement in the output text, last in the text first."""
    items, shift = [], 0
    for start, end, new, entity_type, operator in sorted(edits):
        items.append({"start": start + shift, "end": start + shift + len(new), "entity_type": entity_type,
                      "text": new, "operator": operator})
        shift += len(new) - (end - start)
    return sorted(items, key=lambda item: item["start"], reverse=True)


def items_without_score(response):
    for item in response["items"]:
        assert ITEM_FIELDS <= set(item) <= ITEM_FIELDS | ITEM_OPTIONAL_FIELDS, item
    return [{k: v for k, v in item.items() if k in ITEM_FIELDS} for item in response["items"]]


def assert_anonymized(response, text, edits):
    """The response is text with the edits applied, with Presidio's items in Presidio's order."""
    assert set(response) == {"text", "items"}
    assert response["text"] == splice(text, [(s, e, new) for s, e, new, _, _ in edits])
    assert items_without_score(response) == expected_items(edits)


def assert_error(response, status=None, message=None):
    """Presidio's error body: {"error": message}. status None: any 4xx."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
    else:
        assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    if message is not None:
        assert body["error"] == message


def mask(value, chars, from_end, char="*"):
    n = min(len(value), chars) if chars > 0 else 0
    return value[:len(value) - n] + char * n if from_end else char * n + value[n:]


# ---------------------------------------------------------------- discovery routes


def test_supportedentities_lists_our_entities(server):
    for params in ({"language": "en"}, {}):
        response = get(server, "/supportedentities", **params)
        assert response.status_code == 200, response.text
        entities = response.json()
        assert all(isinstance(e, str) for e in entities) and len(entities) == len(set(entities))
        assert set(PRESIDIO_ENTITIES + OUR_ENTITIES) <= set(entities), set(PRESIDIO_ENTITIES + OUR_ENTITIES) - set(entities)


def test_recognizers_returns_a_list_of_names(server):
    for params in ({"language": "en"}, {}):
        response = get(server, "/recognizers", **params)
        assert response.status_code == 200, response.text
        names = response.json()
        assert isinstance(names, list) and names
        assert all(isinstance(n, str) and n for n in names) and len(names) == len(set(names))


def test_anonymizers_and_deanonymizers(server):
    anonymizers = get(server, "/anonymizers")
    assert anonymizers.status_code == 200, anonymizers.text
    assert {"replace", "redact", "mask", "hash", "encrypt", "keep"} <= set(anonymizers.json())
    deanonymizers = get(server, "/deanonymizers")
    assert deanonymizers.status_code == 200, deanonymizers.text
    assert {"decrypt", "deanonymize_keep"} <= set(deanonymizers.json())


def test_unsupported_language_is_an_error_with_presidios_message(server):
    message = "No matching recognizers were found to serve the request."
    assert_error(get(server, "/supportedentities", language="zz"), message=message)
    assert_error(get(server, "/recognizers", language="zz"), message=message)
    assert_error(post(server, "/analyze", {"text": DOC_ANALYZE_TEXT, "language": "zz"}), message=message)


# ---------------------------------------------------------------- /analyze: shape


def test_documented_analyze_example(server):
    results = analyze(server, DOC_ANALYZE_TEXT)
    assert_finds(results, "PERSON", DOC_ANALYZE_TEXT, "John Smith")
    assert_finds(results, "US_DRIVER_LICENSE", DOC_ANALYZE_TEXT, "AC432223")


def test_analyze_result_fields_are_presidios(server):
    response = post(server, "/analyze", {"text": DOC_ANALYZE_TEXT, "language": "en"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    results = response.json()
    assert isinstance(results, list) and results
    for r in results:
        assert set(r) == ANALYZE_FIELDS, r
        assert r["analysis_explanation"] is None
        assert isinstance(r["start"], int) and isinstance(r["end"], int) and 0 <= r["start"] < r["end"] <= len(DOC_ANALYZE_TEXT)
        assert isinstance(r["score"], (int, float)) and 0 < r["score"] <= 1
        assert isinstance(r["entity_type"], str)


def test_analyze_results_in_presidios_order(server):
    """Presidio sorts by score (highest first), then start, then longer first."""
    text = ("Pt John Smith, MRN: 4829301, seen 03/14/2024 at 192.168.10.25; email jane.doe@example.com, "
            "call 555-123-4567, SSN 536-22-1847.")
    results = analyze(server, text)
    assert len(results) >= 5, found(results)
    keys = [(-r["score"], r["start"], -(r["end"] - r["start"])) for r in results]
    assert keys == sorted(keys), found(results)


def test_return_decision_process_fills_analysis_explanation(server):
    for r in analyze(server, DOC_ANALYZE_TEXT, return_decision_process=True):
        explanation = r["analysis_explanation"]
        assert isinstance(explanation, dict) and EXPLANATION_FIELDS <= set(explanation), explanation
        assert isinstance(explanation["recognizer"], str) and explanation["recognizer"]
        assert isinstance(explanation["original_score"], (int, float))


def test_entities_filter(server):
    results = analyze(server, DOC_ANALYZE_TEXT, entities=["PERSON"])
    assert {r["entity_type"] for r in results} == {"PERSON"}
    assert_finds(results, "PERSON", DOC_ANALYZE_TEXT, "John Smith")


def test_score_threshold(server):
    everything = analyze(server, DOC_ANALYZE_TEXT)
    threshold = max(r["score"] for r in everything)
    above = analyze(server, DOC_ANALYZE_TEXT, score_threshold=threshold)
    assert above == [r for r in everything if r["score"] >= threshold]


def test_optional_presidio_fields_are_accepted(server):
    """api-docs.yml's "Enhanced Request" fields, less ad_hoc_recognizers."""
    results = analyze(server, DOC_ANALYZE_TEXT, correlation_id="123e4567-e89b-12d3-a456-426614174000",
                      return_decision_process=False, trace=False, context=["driver", "license"])
    assert_finds(results, "PERSON", DOC_ANALYZE_TEXT, "John Smith")


def test_batch_of_texts_answers_a_list_per_text(server):
    other = "Contact jane.doe@example.com today."
    batch = analyze(server, [DOC_ANALYZE_TEXT, other])
    assert batch == [analyze(server, DOC_ANALYZE_TEXT), analyze(server, other)]


def test_allow_list_exact_and_regex(server):
    """Presidio's e2e examples: an allowed value is not reported."""
    text = "email: admin@github.com"
    assert_finds(analyze(server, text), "EMAIL_ADDRESS", text, "admin@github.com")
    assert span(text, "admin@github.com") not in spans(analyze(server, text, allow_list=["admin@github.com"]), "EMAIL_ADDRESS")
    regex = analyze(server, text, allow_list=[".*@github.com"], allow_list_match="regex")
    assert span(text, "admin@github.com") not in spans(regex, "EMAIL_ADDRESS")
    # Without allow_list_match the list is exact: the regex text allows nothing.
    assert_finds(analyze(server, text, allow_list=[".*@github.com"]), "EMAIL_ADDRESS", text, "admin@github.com")


# ---------------------------------------------------------------- /analyze: what a correct detector finds


@pytest.mark.parametrize("text", [
    "Patient Zoë Ångström, call 555-123-4567",
    "Pt Zoe\u0301 Ca\u0308rl 👨\u200d👩\u200d👧 🇺🇸 call 555-123-4567",  # combining marks, ZWJ emoji, flag
], ids=["latin1-accents", "combining-emoji-flag"])
def test_offsets_are_python_string_indices(server, text):
    assert_finds(analyze(server, text), "PHONE_NUMBER", text, "555-123-4567")


@pytest.mark.parametrize("text,date", [
    ("Admitted on 03/14/2024 for chest pain.", "03/14/2024"),
    ("Discharged 14 Mar 2024 in stable condition.", "14 Mar 2024"),
    ("Follow-up visit on March 14th with cardiology.", "March 14th"),
    ("Labs drawn 2024-03-14 at the clinic.", "2024-03-14"),
])
def test_dates(server, text, date):
    assert_finds(analyze(server, text), "DATE_TIME", text, date)


def test_valid_ssn(server):
    text = "SSN: 536-22-1847."
    assert_finds(analyze(server, text), "US_SSN", text, "536-22-1847")


@pytest.mark.parametrize("number", ["000-12-3456", "666-12-3456", "912-34-5678", "536-00-1847", "536-22-0000"],
                         ids=["area-000", "area-666", "area-9xx", "group-00", "serial-0000"])
def test_invalid_ssn_is_not_us_ssn(server, number):
    text = f"SSN: {number}."
    start, end = span(text, number)
    ssns = [r for r in analyze(server, text) if r["entity_type"] == "US_SSN"]
    assert not [r for r in ssns if r["start"] < end and start < r["end"]], found(ssns)


@pytest.mark.parametrize("entity_type,text,value", [
    ("EMAIL_ADDRESS", "Contact jane.doe@example.com with questions.", "jane.doe@example.com"),
    ("URL", "Results at https://portal.example-clinic.org/patients/4821.", "https://portal.example-clinic.org/patients/4821"),
    ("IP_ADDRESS", "Login from 192.168.10.25 was blocked.", "192.168.10.25"),
    ("IP_ADDRESS", "Device at 2001:db8::8a2e:370:7334 reported.", "2001:db8::8a2e:370:7334"),
    ("MEDICAL_RECORD_NUMBER", "MRN: 4829301", "4829301"),
], ids=["email", "url", "ipv4", "ipv6", "mrn"])
def test_identifiers(server, entity_type, text, value):
    assert_finds(analyze(server, text), entity_type, text, value)


def test_analyze_output_feeds_anonymize(server):
    """A Presidio client posts /analyze's results unchanged (analysis_explanation and all) to /anonymize."""
    text = "Contact jane.doe@example.com or call 555-123-4567."
    results = analyze(server, text)
    assert_finds(results, "EMAIL_ADDRESS", text, "jane.doe@example.com")
    assert_finds(results, "PHONE_NUMBER", text, "555-123-4567")
    ordered = sorted(results, key=lambda r: r["start"])
    assert all(a["end"] <= b["start"] for a, b in zip(ordered, ordered[1:])), found(results)
    edits = [(r["start"], r["end"], f"<{r['entity_type']}>", r["entity_type"], "replace") for r in results]
    assert_anonymized(anonymize(server, text, results), text, edits)


# ---------------------------------------------------------------- /anonymize


def test_documented_anonymize_example(server):
    response = anonymize(server, DOC_TEXT, DOC_RESULTS, {
        "DEFAULT": {"type": "replace", "new_value": "ANONYMIZED"},
        "PHONE_NUMBER": {"type": "mask", "masking_char": "*", "chars_to_mask": 4, "from_end": True},
    })
    phone = DOC_TEXT[48:57]
    assert_anonymized(response, DOC_TEXT, [(24, 32, "ANONYMIZED", "NAME", "replace"),
                                           (48, 57, mask(phone, 4, True), "PHONE_NUMBER", "mask")])
    # As Presidio's e2e test has it.
    assert response["text"] == "hello world, my name is ANONYMIZED. My number is: 03445****"
    assert items_without_score(response) == [
        {"start": 50, "end": 59, "entity_type": "PHONE_NUMBER", "text": "03445****", "operator": "mask"},
        {"start": 24, "end": 34, "entity_type": "NAME", "text": "ANONYMIZED", "operator": "replace"},
    ]


def test_default_operator_replaces_with_entity_type(server):
    results = [result("PERSON", DOC_TEXT, "Jane Doe"), result("PHONE_NUMBER", DOC_TEXT, "034453334", 0.95)]
    edits = [(r["start"], r["end"], f"<{r['entity_type']}>", r["entity_type"], "replace") for r in results]
    for anonymizers in (None, {}, {"OTHER": {"type": "redact"}}, {"PERSON": {"type": "replace"}}):
        assert_anonymized(anonymize(server, DOC_TEXT, results, anonymizers), DOC_TEXT, edits)


def test_replace_and_redact(server):
    """api-docs.yml's "Replace and Redact Anonymizers" request."""
    results = [result("PERSON", DOC_TEXT, "Jane Doe"), result("PHONE_NUMBER", DOC_TEXT, "034453334", 0.95)]
    response = anonymize(server, DOC_TEXT, results, {
        "PERSON": {"type": "redact"}, "PHONE_NUMBER": {"type": "replace", "new_value": "ANONYMIZED"}})
    assert_anonymized(response, DOC_TEXT, [(*span(DOC_TEXT, "Jane Doe"), "", "PERSON", "redact"),
                                           (*span(DOC_TEXT, "034453334"), "ANONYMIZED", "PHONE_NUMBER", "replace")])


@pytest.mark.parametrize("chars,from_end", [(3, False), (4, True), (100, False), (0, True)])
def test_mask(server, chars, from_end):
    text = "Patient Zoë Ångström, MRN 4829301"
    results = [result("PERSON", text, "Zoë Ångström"), result("MEDICAL_RECORD_NUMBER", text, "4829301")]
    response = anonymize(server, text, results,
                         {"DEFAULT": {"type": "mask", "masking_char": "#", "chars_to_mask": chars, "from_end": from_end}})
    edits = [(r["start"], r["end"], mask(text[r["start"]:r["end"]], chars, from_end, "#"), r["entity_type"], "mask")
             for r in results]
    assert_anonymized(response, text, edits)


def test_keep(server):
    results = [result("PERSON", DOC_TEXT, "Jane Doe"), result("PHONE_NUMBER", DOC_TEXT, "034453334", 0.95)]
    response = anonymize(server, DOC_TEXT, results, {"PERSON": {"type": "keep"}, "PHONE_NUMBER": {"type": "replace"}})
    assert_anonymized(response, DOC_TEXT, [(*span(DOC_TEXT, "Jane Doe"), "Jane Doe", "PERSON", "keep"),
                                           (*span(DOC_TEXT, "034453334"), "<PHONE_NUMBER>", "PHONE_NUMBER", "replace")])


@pytest.mark.parametrize("hash_type,length", [(None, 64), ("sha256", 64), ("sha512", 128)])
def test_hash_is_hex_of_the_right_length(server, hash_type, length):
    config = {"type": "hash"} if hash_type is None else {"type": "hash", "hash_type": hash_type}
    response = anonymize(server, DOC_TEXT, [result("PERSON", DOC_TEXT, "Jane Doe")], {"DEFAULT": config})
    (item,) = response["items"]
    assert re.fullmatch(f"[0-9a-f]{{{length}}}", item["text"]), item
    assert item["operator"] == "hash"
    assert response["text"] == splice(DOC_TEXT, [(*span(DOC_TEXT, "Jane Doe"), item["text"])])


@pytest.mark.parametrize("hash_type,digest", [("sha256", hashlib.sha256), ("sha512", hashlib.sha512)])
def test_hash_with_salt_is_stable_and_presidios(server, hash_type, digest):
    """Presidio 2.2.361+: hex digest of the value's UTF-8 bytes followed by the salt's."""
    text = "Patient Zoë Ångström"
    results = [result("PERSON", text, "Zoë Ångström")]
    config = {"DEFAULT": {"type": "hash", "hash_type": hash_type, "salt": SALT}}
    first, second = anonymize(server, text, results, config), anonymize(server, text, results, config)
    assert first == second
    expected = digest("Zoë Ångström".encode() + SALT.encode()).hexdigest()
    assert_anonymized(first, text, [(*span(text, "Zoë Ångström"), expected, "PERSON", "hash")])


def test_items_are_sorted_like_presidios(server):
    """Last in the text first, whatever order the results came in."""
    text = "Zoë, 555-123-4567, jane.doe@example.com"
    results = [result("PHONE_NUMBER", text, "555-123-4567"), result("EMAIL_ADDRESS", text, "jane.doe@example.com"),
               result("PERSON", text, "Zoë")]
    starts = [item["start"] for item in anonymize(server, text, results)["items"]]
    assert starts == sorted(starts, reverse=True) and len(starts) == 3


def test_offsets_in_python_string_indices(server):
    text = "Pt Zoe\u0301 👨\u200d👩\u200d👧 🇺🇸 call 555-123-4567, email jane.doe@example.com"
    results = [result("PHONE_NUMBER", text, "555-123-4567"), result("EMAIL_ADDRESS", text, "jane.doe@example.com")]
    edits = [(r["start"], r["end"], f"<{r['entity_type']}>", r["entity_type"], "replace") for r in results]
    assert_anonymized(anonymize(server, text, results), text, edits)


def test_contained_results_are_dropped_and_same_type_overlaps_merged(server):
    text = "abcdefghij"
    # Contained in another (any type, any score): dropped.
    contained = anonymize(server, text, [{"start": 0, "end": 10, "score": 0.1, "entity_type": "A"},
                                         {"start": 3, "end": 5, "score": 0.9, "entity_type": "B"}])
    assert_anonymized(contained, text, [(0, 10, "<A>", "A", "replace")])
    # Same span, two types: the higher score wins.
    same_span = anonymize(server, text, [{"start": 0, "end": 6, "score": 0.5, "entity_type": "A"},
                                         {"start": 0, "end": 6, "score": 0.9, "entity_type": "B"}])
    assert_anonymized(same_span, text, [(0, 6, "<B>", "B", "replace")])
    # Same type, overlapping: one result over the union.
    merged = anonymize(server, text, [{"start": 0, "end": 6, "score": 0.5, "entity_type": "A"},
                                      {"start": 3, "end": 8, "score": 0.9, "entity_type": "A"}])
    assert_anonymized(merged, text, [(0, 8, "<A>", "A", "replace")])


def test_same_type_separated_by_spaces_merge(server):
    text = "Patient Jane Doe arrived"
    merged = anonymize(server, text, [result("PERSON", text, "Jane"), result("PERSON", text, "Doe")])
    assert_anonymized(merged, text, [(*span(text, "Jane Doe"), "<PERSON>", "PERSON", "replace")])
    text = "Jane, Doe"
    apart = anonymize(server, text, [result("PERSON", text, "Jane"), result("PERSON", text, "Doe")])
    assert_anonymized(apart, text, [(0, 4, "<PERSON>", "PERSON", "replace"), (6, 9, "<PERSON>", "PERSON", "replace")])


@pytest.mark.parametrize("anonymizers,text,items", [
    ({"NAME": {"type": "keep"}, "LOCATION": {"type": "replace"}}, "I'm George Washington<LOCATION>",
     [{"start": 21, "end": 31, "entity_type": "LOCATION", "text": "<LOCATION>", "operator": "replace"},
      {"start": 4, "end": 21, "entity_type": "NAME", "text": "George Washington", "operator": "keep"}]),
    ({"NAME": {"type": "replace"}, "LOCATION": {"type": "keep"}}, "I'm <NAME>Washington Square Park",
     [{"start": 10, "end": 32, "entity_type": "LOCATION", "text": "Washington Square Park", "operator": "keep"},
      {"start": 4, "end": 10, "entity_type": "NAME", "text": "<NAME>", "operator": "replace"}]),
], ids=["keep-first", "keep-second"])
def test_partial_overlaps_as_presidios_e2e(server, anonymizers, text, items):
    """Presidio's e2e overlap cases: both kept; the earlier one is cut where the later one starts."""
    source = "I'm George Washington Square Park"
    results = [{"start": 4, "end": 21, "score": 0.8, "entity_type": "NAME"},
               {"start": 11, "end": 33, "score": 0.8, "entity_type": "LOCATION"}]
    response = anonymize(server, source, results, anonymizers)
    assert response["text"] == text
    assert items_without_score(response) == items


def test_empty_text_and_no_results(server):
    assert anonymize(server, "", []) == {"text": "", "items": []}
    assert anonymize(server, "nothing here", [], {"DEFAULT": {"type": "redact"}}) == {"text": "nothing here", "items": []}


# ---------------------------------------------------------------- /deanonymize


def test_documented_deanonymize_example(reidentifier):
    response = deanonymize(reidentifier, DOC_CIPHERTEXT, [{"start": 11, "end": 55, "entity_type": "PERSON"}],
                           {"PERSON": {"type": "decrypt", "key": DOC_KEY}})
    assert set(response) == {"text", "items"}
    assert response["text"] == "My name is Chloë"
    assert items_without_score(response) == [
        {"start": 11, "end": 16, "entity_type": "PERSON", "text": "Chloë", "operator": "decrypt"}]


def test_e2e_decrypt_example(reidentifier):
    """Presidio's e2e ciphertext uses the standard base64 alphabet ('+'), which decrypt accepts."""
    text = "e6HnOMnIxbd4a8Qea44LshQDnjvxwzBIaAz+YqHNnMW2mC5r3AWoay8Spsoajyyy"
    response = deanonymize(reidentifier, text, [{"start": 0, "end": len(text), "entity_type": "NUMBER"}],
                           {"NUMBER": {"type": "decrypt", "key": "1111111111111111"}})
    assert response["text"] == "text_for_encryption"
    assert items_without_score(response) == [
        {"start": 0, "end": 19, "entity_type": "NUMBER", "text": "text_for_encryption", "operator": "decrypt"}]


def test_encrypt_then_decrypt_round_trip(reidentifier):
    text = "Patient Zoë Ångström, call 555-123-4567"
    results = [result("PERSON", text, "Zoë Ångström"), result("PHONE_NUMBER", text, "555-123-4567")]
    key = "1111111111111111"
    encrypted = anonymize(reidentifier, text, results, {"DEFAULT": {"type": "encrypt", "key": key}})
    for item in encrypted["items"]:
        assert item["operator"] == "encrypt"
        assert encrypted["text"][item["start"]:item["end"]] == item["text"]
        raw = base64.urlsafe_b64decode(item["text"])
        assert len(raw) % 16 == 0 and len(raw) >= 32  # IV, then whole AES blocks
    # A fresh IV per call.
    assert anonymize(reidentifier, text, results, {"DEFAULT": {"type": "encrypt", "key": key}})["text"] != encrypted["text"]
    decrypted = deanonymize(reidentifier, encrypted["text"], encrypted["items"], {"DEFAULT": {"type": "decrypt", "key": key}})
    assert decrypted["text"] == text
    assert {(i["start"], i["end"], i["text"]) for i in items_without_score(decrypted)} == {
        (*span(text, "Zoë Ångström"), "Zoë Ångström"), (*span(text, "555-123-4567"), "555-123-4567")}


def test_a_bad_ciphertext_fails_only_its_own_request(reidentifier):
    """Requests sent together share the de-identifier's batches: one that
    cannot be decrypted is refused alone, and the rest are answered."""
    key = "1111111111111111"
    text = "e6HnOMnIxbd4a8Qea44LshQDnjvxwzBIaAz+YqHNnMW2mC5r3AWoay8Spsoajyyy"
    good = {"text": text, "deanonymizers": {"NUMBER": {"type": "decrypt", "key": key}},
            "anonymizer_results": [{"start": 0, "end": len(text), "entity_type": "NUMBER"}]}
    bad = {**good, "text": "A" * len(text)}
    bodies = [bad if i % 3 == 0 else good for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda body: post(reidentifier, "/deanonymize", body), bodies))
    for body, response in zip(bodies, responses):
        if body is bad:
            assert response.status_code == 422, response.text
        else:
            assert response.status_code == 200, response.text
            assert response.json()["text"] == "text_for_encryption"


def test_deanonymize_keep(reidentifier):
    text = "hello <PERSON>"
    response = deanonymize(reidentifier, text, [{"start": 6, "end": 14, "entity_type": "PERSON"}],
                           {"DEFAULT": {"type": "deanonymize_keep"}})
    assert response["text"] == text
    assert items_without_score(response) == [
        {"start": 6, "end": 14, "entity_type": "PERSON", "text": "<PERSON>", "operator": "deanonymize_keep"}]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("body,message", [
    ({"language": "en"}, "No text provided"),
    ({"text": "", "language": "en"}, "No text provided"),
    ({}, "No text provided"),
    ({"text": DOC_ANALYZE_TEXT}, "No language provided"),
], ids=["no-text", "empty-text", "empty-body", "no-language"])
def test_analyze_missing_fields(server, body, message):
    assert_error(post(server, "/analyze", body), message=message)


@pytest.mark.parametrize("path", ["/analyze", "/anonymize", "/deanonymize"])
def test_invalid_json(server, reidentifier, path):
    target = reidentifier if path == "/deanonymize" else server
    assert_error(post(target, path, data='{"text": "Jane Doe", '), status=400)


def test_empty_body(server, reidentifier):
    assert_error(post(server, "/anonymize", {}), status=400, message="Invalid request json")
    assert_error(post(reidentifier, "/deanonymize", {}), status=400, message="Invalid request json")


def test_anonymize_missing_text_with_results(server):
    """Presidio: 422 "Invalid analyzer result, start: 24 and end: 32, while text length is only 0."."""
    assert_error(post(server, "/anonymize", {"analyzer_results": DOC_RESULTS[:1]}))


def test_anonymize_missing_analyzer_results(server):
    assert_error(post(server, "/anonymize", {"text": DOC_TEXT}), status=422,
                 message="Invalid input, request must contain analyzer results")


def test_unknown_operator_is_named(server, reidentifier):
    response = post(server, "/anonymize", {"text": DOC_TEXT, "analyzer_results": DOC_RESULTS[:1],
                                           "anonymizers": {"DEFAULT": {"type": "bogus"}}})
    assert_error(response, status=422, message="Invalid operator class 'bogus'.")
    response = post(reidentifier, "/deanonymize", {"text": "hello", "deanonymizers": {"DEFAULT": {"type": "bogus"}},
                                             "anonymizer_results": [{"start": 0, "end": 5, "entity_type": "X"}]})
    assert_error(response, status=422, message="Invalid operator class 'bogus'.")


def test_custom_operator_is_refused(server):
    response = post(server, "/anonymize", {"text": DOC_TEXT, "analyzer_results": DOC_RESULTS[:1],
                                           "anonymizers": {"DEFAULT": {"type": "custom", "lambda": "lambda x: x"}}})
    assert_error(response, status=400, message="Custom type anonymizer is not supported")


@pytest.mark.parametrize("config,message", [
    ({"type": "mask", "masking_char": "*", "from_end": True}, "Expected parameter chars_to_mask"),
    ({"type": "mask", "masking_char": "*", "chars_to_mask": 4}, "Expected parameter from_end"),
    ({"type": "mask", "masking_char": "**", "chars_to_mask": 4, "from_end": True},
     "Invalid input, masking_char must be a character"),
    ({"type": "hash", "hash_type": "md5"}, "Parameter hash_type value md5 is not in range of values ['sha256', 'sha512']"),
    ({"type": "hash", "salt": "short"}, "Salt must be at least 16 bytes (128 bits). Provided salt is 5 bytes."),
    ({"type": "encrypt", "key": "short"}, "Invalid input, key must be of length 128, 192 or 256 bits"),
    ({"type": "replace", "new_value": 5}, "Invalid parameter value for new_value. Expecting 'string', but got 'number'."),
    ({"new_value": "x"}, "Invalid input, operator config must contain operator_name"),
], ids=["mask-no-chars", "mask-no-from-end", "mask-two-chars", "hash-md5", "hash-short-salt", "encrypt-short-key",
        "replace-number", "no-type"])
def test_bad_operator_parameters(server, config, message):
    response = post(server, "/anonymize", {"text": DOC_TEXT, "analyzer_results": DOC_RESULTS[:1],
                                           "anonymizers": {"DEFAULT": config}})
    assert_error(response, status=422, message=message)


@pytest.mark.parametrize("analyzer_result,message", [
    ({"start": 24, "end": 99, "score": 0.8, "entity_type": "NAME"},
     "Invalid analyzer result, start: 24 and end: 99, while text length is only 57."),
    ({"start": 30, "end": 24, "score": 0.8, "entity_type": "NAME"},
     "Invalid input, start index '30' must be smaller than end index '24'"),
    ({"start": -1, "end": 24, "score": 0.8, "entity_type": "NAME"}, "Invalid input, result start and end must be positive"),
    ({"start": 24, "end": 32, "entity_type": "NAME"}, "Invalid input, analyzer result must contain score"),
    ({"start": 24, "end": 32, "score": 0.8}, "Invalid input, result must contain entity_type"),
], ids=["past-end", "start-after-end", "negative", "no-score", "no-entity-type"])
def test_bad_analyzer_results(server, analyzer_result, message):
    assert_error(post(server, "/anonymize", {"text": DOC_TEXT, "analyzer_results": [analyzer_result]}),
                 status=422, message=message)
