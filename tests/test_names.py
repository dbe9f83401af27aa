"""People named without a label (gateway.inspect.detect: names.free_person and the
census name data), and the PHI rule for patient-directed mail: a patient's name with
an appointment, a refill, a result or a health fact is PHI; providers, staff, public
figures, streets and companies are not patients."""

from __future__ import annotations

import base64
import json
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
from documents import docx_with_text, pdf_with_text

from gateway.config import InspectionConfig
from gateway.inspect import Inspector
from gateway.inspect.content import Extraction, Place, Segment
from gateway.inspect.detect import Backend, Evidence, detect, find_spans, is_phi, matcher
from gateway.inspect.detect.namedata import name_data
from gateway.inspect.detect.scan import compiled_for
from gateway.mail.message import parse

CONFIG = InspectionConfig()
# Hyperscan is a dependency wherever its wheels exist (as in test_detectors.py).
HAS_HYPERSCAN = platform.machine() == "x86_64" or matcher.hyperscan is not None
BACKENDS: list[Backend] = ["re2", "hyperscan"] if HAS_HYPERSCAN else ["re2"]


def names(text: str) -> list[str]:
    return [text[s.start : s.end] for s in find_spans(text, CONFIG) if s.type == "name"]


def body(text: str, subject: str = "") -> Extraction:
    segments = [Segment(Place("subject"), subject), Segment(Place("body", 0), text)]
    return Extraction(segments=segments)


def phi(text: str) -> bool:
    return detect(body(text), CONFIG).phi


# ---------------------------------------------------------------- the issue's table

ISSUE_TABLE = [
    "We saw Jennifer Walsh today; her HIV viral load is undetectable.",
    "Robert King: your prescription for metformin is ready for pickup.",
    "Patient: John Q. Patient\nDiagnosis: type 2 diabetes",
    "Hi Maria Lopez, your colonoscopy is scheduled for March 3 at 9am with Dr. Patel.",
    "Dear Mr. Nguyen, your biopsy results are back.",
]


@pytest.mark.parametrize("text", ISSUE_TABLE)
def test_issue_table_is_phi(text: str) -> None:
    assert phi(text)


def test_issue_table_names() -> None:
    assert [names(t) for t in ISSUE_TABLE] == [
        ["Jennifer Walsh"],
        ["Robert King"],  # "King" is also a word: the given name vouches for it
        ["John Q. Patient"],  # a surname that is a word, after a middle initial
        ["Maria Lopez"],
        ["Nguyen"],
    ]


# ---------------------------------------------------------------- positions

POSITIONS = {
    "line start before a colon": (
        "Update for the front desk\nTeresa Okafor: her lisinopril refill was sent.",
        ["Teresa Okafor"],
    ),
    "line start before a comma": (
        "Gregory Hansen, your physical therapy visit moved to 2 pm.",
        ["Gregory Hansen"],
    ),
    "inside a sentence": (
        "Yesterday the scan for Dolores Fitzgerald showed a small kidney stone.",
        ["Dolores Fitzgerald"],
    ),
    "greeting with hi": ("Hi Marcus Webb,\nyour sleep study is booked.", ["Marcus Webb"]),
    "greeting with hello, one word": ("Hello Tom\nThe refill you asked for is in.", ["Tom"]),
    "a list": (
        "Today's callbacks:\n- Linda Castillo - A1C 8.4\n- Peter Novak - INR 3.1\n",
        ["Linda Castillo", "Peter Novak"],
    ),
    "a table": (
        "name\tvisit\ttest\nOkafor, Teresa\t05/06/2025\tmammogram\n",
        ["Okafor, Teresa"],
    ),
    "all capitals": ("HANSEN, GREGORY\nDX: asthma", ["HANSEN, GREGORY"]),
    "all capitals, given first": ("Pt seen: GREGORY HANSEN, A1C 6.1", ["GREGORY HANSEN"]),
    "family, given and initial": (
        "Reviewed Castillo, Linda M. for the atorvastatin change.",
        ["Castillo, Linda M."],
    ),
    "hyphenated surname": (
        "Ana Ruiz-Delgado: fasting glucose 132 this morning.",
        ["Ana Ruiz-Delgado"],
    ),
    "surname in parts": ("We called Rosa de la Fuente about the MRI.", ["Rosa de la Fuente"]),
    "apostrophe": (
        "Kevin O'Brien's echocardiogram is due; Siobhan D'Arcy has one too.",
        ["Kevin O'Brien", "Siobhan D'Arcy"],
    ),
    "a common-word given name with a surname": (
        "Hope Alvarez: your flu shot appointment is Tuesday.",
        ["Hope Alvarez"],
    ),
    "line start, a surname the census lacks": (
        "Priya Raghunathan: the allergy clinic appointment is at 4.",
        ["Priya Raghunathan"],
    ),
    "two everyday words, addressed": (
        "Grace King: your check-up is on Friday.",
        ["Grace King"],
    ),
    "accents": ("Résultats: José Peña, glucose 140", ["José Peña"]),
    "HL7 order": ("PID|1||88||Hansen^Gregory^T||19700101|M\nDG1|1||E11.9", ["Hansen^Gregory"]),
}


@pytest.mark.parametrize("position", POSITIONS)
def test_name_positions(position: str) -> None:
    text, expected = POSITIONS[position]
    assert names(text) == expected
    assert phi(text)  # each has a health finding or a care word next to the name


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_engines_find_the_same_names(backend: Backend) -> None:
    texts = [text for text, _ in POSITIONS.values()] + list(NOT_PATIENTS.values())
    for text in texts:
        assert find_spans(text, CONFIG, backend=backend) == find_spans(text, CONFIG), text


@pytest.mark.skipif(not HAS_HYPERSCAN, reason="Hyperscan is x86-64 only")
def test_every_built_in_pattern_compiles_in_hyperscan() -> None:
    # A pattern Hyperscan rejects (one alternation of too many phrases) makes the whole
    # database fail to compile at once: start-up then compiles every pattern alone to
    # find it, and RE2 scans it separately.
    engine = compiled_for(InspectionConfig(), "hyperscan").engine
    assert isinstance(engine, matcher.HyperscanEngine)
    assert engine.rejected == ()


# ---------------------------------------------------------------- carriers


def _mail(*parts: str) -> bytes:
    head = (
        "From: Clinic <clinic@example.com>\nTo: a@example.org\nSubject: Update\n"
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
    )
    raw = head + "".join(f"--XX\n{p}\n" for p in parts) + "--XX--\n"
    return raw.replace("\n", "\r\n").encode()


def _attachment(content_type: str, name: str, data: bytes) -> str:
    return (
        f'Content-Type: {content_type}\nContent-Disposition: attachment; filename="{name}"\n'
        f"Content-Transfer-Encoding: base64\n\n{base64.encodebytes(data).decode()}"
    )


@pytest.fixture(scope="module")
def inspector() -> Iterator[Inspector]:
    tool = Inspector(InspectionConfig(), workers=1)
    yield tool
    tool.close()


NOTE = "Marcus Webb: the sleep study is booked for next week."
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    "part",
    [
        "Content-Type: text/html\n\n<p>Note</p><p><b>Marcus Webb</b>: the sleep study is "
        "booked for next week.</p>",
        _attachment("application/pdf", "note.pdf", pdf_with_text(["Note", NOTE])),
        _attachment(DOCX, "note.docx", docx_with_text(["Note", NOTE])),
    ],
    ids=["html", "pdf", "docx"],
)
def test_extracted_documents(inspector: Inspector, part: str) -> None:
    cover = "Content-Type: text/plain\n\nSee the attached note."
    findings = inspector.inspect(parse(_mail(cover, part)).message)
    assert findings.phi
    assert findings.types.get("name") == 1


# ---------------------------------------------------------------- not patients

NOT_PATIENTS = {
    "staff lunch with a provider": "The team lunch is on Friday with Dr. Patel from cardiology.",
    "greeting and a provider": "Hi Priya, the team lunch is on Friday with Dr. Patel.",
    "staff names": "Teresa Okafor and Gregory Hansen will cover the front desk on Monday.",
    "provider signature": (
        "Thanks for the insulin order forms.\n\nSincerely,\nLinda Castillo\nClinic operations"
    ),
    "credentials": "Questions about the asthma protocol go to Linda Castillo, RN.",
    "job title": "Peter Novak, Practice Manager, updated the vaccine fridge log.",
    "referring physician": "The referring physician Gregory Hansen will join the MRI review.",
    "public figure": "Martin Luther King Jr. Day: the clinic is closed; flu shots resume Tuesday.",
    "street": "Our new pharmacy at 80 Martin Luther King Jr Blvd offers blood pressure checks.",
    "street with a name word": "Rose Street pharmacy now offers refills and diabetes classes.",
    "companies": (
        "Johnson & Johnson and Wells Fargo sponsor the asthma 5K; Ben & Jerry's brings dessert."
    ),
    "hope and will": "Hope you are well. Will you join us for the diabetes walk?",
    "months and weekdays": "May 5 is asthma awareness day; the COPD talk is on Wednesday, June 4.",
    "newsletter": (
        "Managing high blood pressure: cut salt, walk daily and take lisinopril as prescribed. "
        "Ask about an A1C test at your next appointment. Written by Karen Miller."
    ),
    "a hospital": "Grace Hospital opens a new wing for heart failure care.",
    "something else ready for pickup": (
        "Hello Dana Whitfield, the replacement badge you ordered is ready for pickup at security."
    ),
    "a drug company": "Eli Lilly lowered the price of insulin for people with diabetes.",
    "an educator": "Jennifer Walsh, our diabetes educator, runs the Tuesday class.",
    "credentials after a comma": "Join Jennifer Walsh, RD, for a class on eating with diabetes.",
    # A surname the census lacks, mid-sentence, counts only with health near it.
    "unknown surname, no health near": "Priya Raghunathan spoke at the fair about the budget.",
}


@pytest.mark.parametrize("case", NOT_PATIENTS)
def test_not_patients(case: str) -> None:
    assert not phi(NOT_PATIENTS[case])


def test_providers_and_places_are_no_name_findings() -> None:
    for case in ("staff lunch with a provider", "provider signature", "credentials", "job title",
                 "referring physician", "public figure", "street", "companies", "hope and will",
                 "a hospital", "a drug company", "an educator", "credentials after a comma",
                 "unknown surname, no health near"):  # fmt: skip
        assert names(NOT_PATIENTS[case]) == [], case


def test_a_name_far_from_health_is_a_finding_but_no_patient() -> None:
    # Found (a name is a finding), but it ties nothing to a person: no PHI, and not
    # "sensitive in the subject".
    findings = detect(body("Minutes attached.", subject="Lunch with Teresa Okafor"), CONFIG)
    assert findings.types == {"name": 1}
    assert not findings.phi and not findings.in_subject
    # In the same place as a health word it is a patient's.
    findings = detect(body("", subject="Teresa Okafor - MRI results"), CONFIG)
    assert findings.phi and findings.in_subject


def test_care_word_rule() -> None:
    assert phi("Hi Gregory,\nyour appointment is confirmed.")
    assert not phi("Hi Gregory,\nthe budget meeting is confirmed.")
    assert is_phi(Evidence(counts={"name": 1}, care_context=True), CONFIG)
    assert not is_phi(Evidence(counts={"name": 1}), CONFIG)
    assert not is_phi(Evidence(counts={}, care_context=True), CONFIG)
    # A care word counts as one health finding towards min_health_terms.
    two = InspectionConfig(min_health_terms=2)
    assert not is_phi(Evidence(counts={"name": 1}, care_context=True), two)
    assert is_phi(Evidence(counts={"name": 1, "drug": 1}, care_context=True), two)


def test_name_data_comes_from_the_census_lists() -> None:
    data = name_data()
    assert len(data.surnames) == 88_799
    assert {"JENNIFER", "ROBERT", "PRIYA"} <= data.given  # census and the Faker list
    assert {"NGUYEN", "OBRIEN", "PATIENT"} <= data.surnames
    assert {"HOPE", "WILL", "MAY", "KING"} <= data.words
    assert "AL" not in data.given  # too short to search for as a literal


def test_a_lab_named_near_a_person_is_care() -> None:
    text = "The INR for Gregory Hansen is in; please call him."
    assert [t for t, _ in _types(text)] == ["name"]  # no value: no lab result ...
    assert phi(text)  # ... but care for the person named next to it
    assert not phi("Gregory Hansen is in; please call him.")


def _types(text: str) -> list[tuple[str, str]]:
    return [(s.type, text[s.start : s.end]) for s in find_spans(text, CONFIG)]


def test_health_terms_by_form() -> None:
    text = (
        "Esophagitis, Scleroderma; a Pancreatectomy and a tympanoplasty; Omeprazole and "
        "vismodegib; Thyroid Cancer, Liver Resection, Botox Injection; Potassium result"
    )
    assert _types(text) == [
        ("diagnosis", "Esophagitis"),
        ("diagnosis", "Scleroderma"),
        ("procedure", "Pancreatectomy"),
        ("procedure", "tympanoplasty"),
        ("drug", "Omeprazole"),
        ("drug", "vismodegib"),
        ("diagnosis", "Thyroid Cancer"),
        ("procedure", "Liver Resection"),
        ("procedure", "Botox Injection"),
        ("lab_result", "Potassium result"),
    ]
    everyday = "A diploma, empathy and April in Oklahoma; the SQL Injection fix; check your A1C"
    assert _types(everyday) == []


# ---------------------------------------------------------------- independent dev set
# tests/data/names_dev.jsonl: messages written for this test alone (not in any bench
# corpus), several paraphrases per kind of message as different clinics would word them,
# and hard negatives of the same shapes (staff, HR, IT, newsletters, businesses, places).
DEV_SET = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "names_dev.jsonl").read_text().splitlines()
]
# Measured: recall 0.977, false positives 0.0, name span recall 0.987 (346 messages).
# The misses are a given name the lists lack mid-sentence ("Kenji Watanabe"), a surname
# that is also a word ("Penelope Ward", "Rebecca Stone") with no care word near, a
# schedule table without "at" before its times, and a pickup notice ("your order is
# ready") that could come from any shop.
DEV_MIN_RECALL = 0.96
DEV_MAX_FP = 0.03
DEV_MIN_SPAN_RECALL = 0.97


def test_dev_set_recall_and_false_positives() -> None:
    positives = [r["text"] for r in DEV_SET if r["phi"]]
    negatives = [r["text"] for r in DEV_SET if not r["phi"]]
    assert len(positives) >= 150 and len(negatives) >= 80
    recall = sum(map(phi, positives)) / len(positives)
    false_positives = sum(map(phi, negatives)) / len(negatives)
    assert recall >= DEV_MIN_RECALL
    assert false_positives <= DEV_MAX_FP


def test_dev_set_name_spans() -> None:
    total = found = 0
    for row in DEV_SET:
        spans = [s for s in find_spans(row["text"], CONFIG) if s.type == "name"]
        for start, end in row["names"]:
            total += 1
            found += any(s.start < end and start < s.end for s in spans)
    assert found / total >= DEV_MIN_SPAN_RECALL


@pytest.mark.parametrize(
    "text",
    [
        "Dear Ms. de la Cruz, your appointment with dermatology is next Tuesday.",
        "Hi Pieter Van der Berg, your refill is ready at the pharmacy.",
        "Anne St. John, your blood work is scheduled for 7:30 am, fasting.",
        "Hi Patrick O'Malley, your lab results are ready.",
        "Daniela D'Angelo, your visit with Dr. Sato is tomorrow at 2.",
        "Dear Lucia Garcia-Marquez, your screening is scheduled for June 3.",
        "Eileen MacGregor: your prescription was sent to CVS.",
        # Particles, then a surname the census lacks.
        "Telehealth visit with Rosa de los Rios; tolerating sertraline well.",
        "Had a long talk with Jan Van den Broeck about the hysterectomy.",
        "Tomas M. de las Heras / warfarin / refill authorized",
    ],
)
def test_compound_surnames(text: str) -> None:
    assert phi(text) and names(text)


def test_the_whole_surname_after_particles_is_the_name() -> None:
    text = "Telehealth visit with Rosa de los Rios; tolerating sertraline well."
    assert ("name", "Rosa de los Rios") in _types(text)


@pytest.mark.parametrize(
    "text",
    [
        # Medicines from the reference list (scripts/drug_lexicon.py), drug classes.
        "Our pharmacist reviewed the list for Ruth Okonkwo and flagged pyrazinamide.",
        "Yesterday Dale Hubbard said the theophylline makes him shaky.",
        "Hi Christina!\nYour statins are on their way.",
        "Good news, Heather! The diuretics you asked for can be collected today.",
        # Office procedures, specialties, billing necessity.
        "Had a long conversation with Angela Hodge about the chemical peel.",
        "Good evening Calvin Ruiz,\nthe otolaryngology team has a cancellation on Oct 21.",
        "Dispute opened for Jennifer Phillips: payer says the scan was not medically necessary.",
        # A line that addresses somebody by a census surname, given name unknown.
        "Raj Malhotra, your A1C is ready to view in the portal.",
        "Li Wei, your colonoscopy prep instructions are attached.",
        # After "Patient", a known surname is enough; care transfers; abbreviations.
        "Patient Kenji Watanabe no-showed today.",
        "Sending over the records for Jamal Washington; he transferred care to us.",
        "SANCHEZ, GLORIA  03/02/1954  Room 412  CHF exacerbation",
        "Spoke with Abdullah Rahman's wife; he's doing better after the stent.",
        # Conditions by their everyday names; a common surname that is also a word.
        "Perez, Jim S. - seen 2026-11-25 for depression",
        "Ward, Christina M. - seen 10/7/2026, pernicious anemia",
        # A given name that is also a word, alone, with health near it.
        "Robin, we look forward to seeing you for the endoscopy on 09/06.",
        "Good news, Joy! Your prednisone can be collected today.",
        # A given name alone before "'s", with health near it.
        "Reminder: Aaliyah's well-child visit is Thursday at 10.",
        "Tom's labs are back, all normal.",
        # Called out at a sentence's end.
        "Thank you for choosing us, Darius. Your dental cleaning is due in March.",
    ],
)
def test_wider_health_vocabulary(text: str) -> None:
    assert phi(text)


@pytest.mark.parametrize(
    "text",
    [
        # A given name that is also a word, alone, with nothing about health.
        "Robin, we look forward to seeing you at the picnic on Saturday.",
        "Good news, Joy! The bake sale raised $400.",
        "Patient Experience Week starts Monday; the Patient Safety Committee meets Friday.",
        "Karen's team lunch is Friday.",
        "Good Morning, your refill is ready.",
        "Dear Customer, your prescription is ready.",
        "Hi Paul, your dinner reservation for 4 is confirmed.",
        # Staff mail: a health term near a name is the topic, not the person's.
        "Flu shots for employees: see Tamara Gibbs in Occupational Health, Mon-Fri 8-4.",
        "This month's wellness tip from Coach Maria Santos: walking lowers blood pressure.",
        "Ben & Jerry's is sponsoring the flu shot fair.",
        # A doctor addressed by title is a person identified, but no patient.
        "Hi Dr. Nguyen, the clinic schedule for next week is attached.",
        # Buildings and gifts named for people are a business topic.
        "The board approved the new oncology wing named for Ingrid Solberg.",
        # "for <name>, MD": a provider, not a patient.
        "Credentialing complete for Douglas Howe, MD; privileges start 12/07/2026.",
    ],
)
def test_words_and_providers_need_more(text: str) -> None:
    assert not phi(text)


def test_a_condition_is_no_surname() -> None:
    # "Brain" is a given name in the lists; "Brain Tumor" is a diagnosis, not a person.
    assert names("Sherri Lowe\nProblem: Brain Tumor\nNext step: biopsy") == ["Sherri Lowe"]


@pytest.mark.parametrize(
    "text",
    [
        # Scheduling words count with a provider or service and no staff topic.
        "Hi Maria, you're booked with Dr. Patel on Tuesday at 3:15.",
        "Hello Ana, we will see you Thursday at Lakeside Family Medicine.",
        # A name alone at a line's start, addressed.
        "Maria,\n\nYour appointment is confirmed for Friday.",
        "Kathleen - just a reminder about your dental cleaning tomorrow at 9!",
        "Morning Beth, your annual physical is set for next Thursday.",
        "Michael Torres, Dr. Wu reviewed your blood work and everything looks normal.",
    ],
)
def test_care_wording(text: str) -> None:
    assert phi(text)


@pytest.mark.parametrize(
    "text",
    [
        "Hi Maria, the cardiology team lunch moved to Friday.",
        "Hi Tom, your laptop is ready for pickup at the IT desk.",
        "Hi Ana, please review the clinic's Q3 budget before the staff meeting.",
        "Hi Lauren, the dermatology clinic budget review is scheduled for Monday.",
        "Kayla, your annual performance review is booked for May 3.",
        "Hi Olivia, see you at the book club on Thursday!",
        "Hi Ben, your help desk ticket #4821 has been resolved.",
    ],
)
def test_staff_and_business_mail(text: str) -> None:
    assert not phi(text)


@pytest.mark.parametrize(
    "text",
    [
        # A health term before a place's, event's or organisation's noun names that thing.
        "Volunteers needed at the Harmon Cancer Pavilion gift shop: ask Priya Nair.",
        "Lupus Awareness Month: Gloria Evans will hand out ribbons in the lobby.",
        "Thanks to Derek Owens, whose stroke pathway halved door-to-needle times.",
        "Dear Rosa,\nthank you for running the Cholecystectomy list on Tuesday.",
        "Parkinson's Disease outreach grant: drafts to Leon Fischer by Friday.",
        # Streets and wings named for people are places.
        "Parking on Madison Avenue is closed; infusion visitors use the east garage.",
        "Neurology moves to the Eleanor Park Wing next month.",
        # Public figures in the news: the health is theirs, told in public, not a patient's.
        "Health news: in a magazine interview, Walter Grey spoke about his lupus.",
        # A credential in capitals is no surname ("Do").
        "VASCULAR SURGERY STAFF\nOKAFOR-LEE, MARTIN DO ... ext 4413",
        # A place word after two names: a wing named for somebody.
        "Directions: take Harbor Road past the Infectious Disease clinic to the Ruth Okoye Wing.",
        # A given name that is a word too, starting a sentence about a grant.
        "The fund awarded a grant for hepatitis screening. Grant reports are due 3/1.",
    ],
)
def test_health_terms_naming_things_and_topics(text: str) -> None:
    assert not phi(text)


@pytest.mark.parametrize(
    "text",
    [
        # A given name alone as a sentence's or clause's subject, next to health.
        "Therapy note: Colette reported fewer nightmares; continue sertraline.",
        "CC: knee pain\nDesmond here with his daughter. Taking meloxicam daily.",
        "As agreed, Harriet will hold the warfarin three days before the colonoscopy.",
        # Called by name after a sentence, or before "--".
        "Your lisinopril refill shipped today. Octavia, call us if the dose changed.",
        "Rupert -- your levothyroxine runs out next week.",
        "Hola Marisol, le recordamos su cita con el Dr. Vega el 4/12.",
        # More greetings, and patients written to in Spanish, Portuguese and French.
        "Hello again Teodoro! Your endoscopy is on the 9th.",
        "Hi Imelda & family, your hospice intake visit is Friday.",
        "Buenos días Reynaldo, su cita con el Dr. Vega es el lunes.",
        "Olá Conceição, a sua consulta foi confirmada.",
        "Bonjour Gaëlle, votre rendez-vous est confirmé pour mardi.",
        # Hand-offs name the patient with bed and transfer words only.
        "Lorna Whitfield (bed 12) -> step-down. Handoff given to the night nurse.",
        # A common surname that is also a place word, with health near.
        "Rounded on Vincent Hall, who is recovering from his appendectomy.",
        "Assessment: Mabel Law presents with new-onset angina.",
        # "Patient" is a surname too (the census lists it).
        "Please refer Gordon Patient to nephrology for his kidney stones.",
        # A quoted message that starts with the patient's name.
        'Message from your doctor:\n"Lucinda, the potassium from 5/2 was normal."',
    ],
)
def test_names_in_notes_and_reminders(text: str) -> None:
    assert phi(text)


@pytest.mark.parametrize(
    "text",
    [
        # Given names of other origins, from every Latin-script Faker locale's list.
        "Akinwale Bakare asked us to move his dialysis to the morning shift.",
        "We left a message for Thandiwe Nkosi about her mammogram results.",
        "Nguyen Thi Huong's metformin was increased to 1000 mg.",
        # A surname that is a given name elsewhere, with health near.
        "The insulin pens shipped this week, Emre Yusuf. Two refills remain.",
        # Called out with a dash, or a dash ending the line.
        "Great news, Rosalind - your A1C dropped to 6.4%.",
        "Benedikt -\nthe physical therapy order for your shoulder is in.",
        "Welcome back Ignatius! Your cardiac rehab restarts Monday.",
        # Labels a nursing home, a payer, a therapist or a school nurse writes.
        "Resident: Wilhelmina Okoro, Room 14\nContinue donepezil 10 mg at bedtime.",
        "Member: Radomir Kowalczyk\nClaim for knee arthroscopy: approved.",
        "Student: Ximena Ocampo\nInhaler kept at the nurse's office for asthma.",
        # "Family, Given" after "for", the surname unknown to the census.
        "Interpreter booked for Trandafir, Ionela M. at 10:30 (cataract surgery).",
        # "Family, Given's".
        "Forwarded Ostrowski, Helena's chart to the cardiology office for her stress test.",
        # Virtue names, with a known surname and health near.
        "Please remind Comfort Delgado that her colonoscopy prep starts tonight.",
    ],
)
def test_names_of_every_origin_and_more_callouts(text: str) -> None:
    assert phi(text)


@pytest.mark.parametrize(
    "text",
    [
        "Re: Grace Period for claims\nPlease review the claims backlog by Friday.",
        "Orientation Monday: Anneliese Brandt joins the Pain Medicine team.",
        "Hi all,\nKelechi Obi will be out 3/2 through 3/9. Dr. Lund covers the Sports "
        "Medicine inbox.",
        "Our museum exhibit on the history of polio care opens with a quote from Jonas Salk.",
        "A gift from the Oyelaran family funds a new Endoscopy suite.",
        "Comfort Inn has rooms for families of transplant patients.",
        "Honor Society members will volunteer at the diabetes walk.",
    ],
)
def test_staff_out_of_office_specialties_and_exhibits(text: str) -> None:
    assert not phi(text)


def test_given_names_of_other_origins_but_no_words() -> None:
    data = name_data()
    # Faker's lists of es_CO, ig_NG, tr_TR, ro_RO: names the 1990 census lacks.
    assert {"ESTIVEN", "CHIZOBA", "SAGCAN", "IONELA"} <= data.given
    # Faker's lists hold words too ("Colon", "Oral"); dictionary words are left out.
    assert not {"COLON", "ORAL", "CAN", "MATH"} & data.given
    # Virtue names are given names, with a word's caution.
    assert {"BLESSING", "HONOR"} <= data.given & data.words


@pytest.mark.parametrize(
    "text",
    [
        # Paying for a stay, in English and Spanish; a given name alone before ":" after
        # "for"; a question's subject; a greeting without a comma.
        "To whom it may concern, this is about the account of Roland T. Beckwith; I cannot "
        "pay the $940 for the hospital stay yet.",
        "Hola, soy Ximena Castillo, recibí un cobro de $210 por la consulta con la Dra. "
        "Ruiz. ¿No lo cubre mi seguro?",
        "Quote for Leopold: the MRI at Lakeview Imaging will cost you $380 after your deductible.",
        "Hello, why was Benedikt billed again for the colonoscopy on 4/2?",
        "hey Marisol this is the front desk, Dr. Amari moved your cortisone injection to "
        "Friday at 3",
        # Capitals after "RE:", "Patient" and "daughter of", the given name not the
        # census's.
        "RE: DRUMMOND, ADAEZE J.\nYes, the cardiology consult is confirmed; bring your "
        "medication list.",
        "Patient DRUMMOND, CHIAMAKA asked for a copy of her potassium result (5.9 mmol/L).",
        "We are still worried about the pneumonia since the surgery.\n-- Ines, daughter of "
        "KEMAL VILLANUEVA",
        # A caregiver's signature names the patient: a word name with a known surname.
        "Can the gabapentin be refilled? Only two tablets are left at home.\nMany thanks,\n"
        "Marta, niece and caregiver of Comfort T. Bradley, +1 415 555 0199",
        # "with Dr. Haddad" after the comma names another person, not this one's job.
        "An interpreter (Tagalog) is booked for Rosario Dizon, Colonoscopy with Dr. Haddad, "
        "3/14 at 8:00.",
        # A lab value is somebody's, staff topic ("shift") or not.
        "Night shift notes: Wendell Okafor, potassium 3.1 mmol/L this morning.",
        # Hand-off and wound-care wording.
        "Pt Rosalind Achebe handed to Dr. Ferris for the weekend; NPO after midnight.",
        "Accepting Wendell Achebe in transfer from Riverside Clinic; bed 14 is ready.",
        "Ottilie: the wound photos you sent look better; keep it covered until Friday.",
        # Word names given in the US since the census lists.
        "Journey Whitaker's A1C came back at 8.1; please book a follow-up.",
        "Rain Delgado is due for a mammogram this month.",
        # Portuguese: "Prezada", "o exame".
        "Prezada Conceição, o exame de ferritina deu 20. Vamos repetir em três meses.",
    ],
)
def test_billing_capitals_relations_and_hand_offs(text: str) -> None:
    assert phi(text)


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        # News, politics and public life: a health term near a name is the topic.
        (
            "Headline: Gerald Whitmore opens up about living with lupus and urges readers to "
            "get screened.",
            "",
        ),
        ("Senator Ruth Calloway introduced a bill on insulin pricing this week.", ""),
        ("Governor Elaine Sutter announced a new diabetes prevention program.", ""),
        (
            "Our blog this month: what Delphine Arbuckle's hip replacement teaches about recovery.",
            "",
        ),
        ("Trivia for quiz night: which president had asthma? Hint: not Warren Beasley.", ""),
        # Buildings named for people: a place word after a full name.
        ("Flu shots on 10/14 at Harriet Quimby Atrium for anyone with asthma.", ""),
        ("Dedication on 3/3 for Lionel Okonkwo Tower, home of the new dialysis unit.", ""),
        (
            "The outreach van parks outside Calvin Brooks Hall on 5/2 offering free "
            "cholesterol checks.",
            "",
        ),
        # A doctors' list with specialties; committees, rotas, shortages, retirements.
        (
            "Case conference Thursday: Dr. Ahn (radiology), Dr. Pierce (oncology), Miriam Osei "
            "(pathology).",
            "",
        ),
        ("Formulary committee notes: Gloria Nunez presents the insulin glargine review.", ""),
        (
            "Staff flu clinic: Oscar Lindqvist gives the shots in room 12, 10/3, no appointment "
            "needed; ask about the amoxicillin shortage too.",
            "",
        ),
        (
            "Nursing rota, Friday: Delia Fontaine is charge on 5 East; the float pool covers "
            "the step-down unit.",
            "",
        ),
        (
            "Season of giving: sign the card for Winifred Castellano, retiring from Nephrology.",
            "Community bulletin 3/4/2027",
        ),
        (
            "Comunicado de recursos humanos: Lívia Prado assume a coordenação de Cardiology a "
            "partir de 3/1/2027.",
            "",
        ),
        # Companies.
        ("Montgomery Ward sold a tonic for arthritis in its 1920s catalog.", ""),
        ("Shipment tracking: Tobias Biomedical delivered the glucose meter kits to receiving.", ""),
        # The new callouts need health near, and no staff topic.
        ("Did Bartholomew finish the slides for the budget meeting?", ""),
        ("Has Ingrid reviewed the diabetes protocol for the staff training?", ""),
        ("hey Marcus the laptop is ready at the IT desk", ""),
    ],
)
def test_public_figures_buildings_boards_and_companies(text: str, subject: str) -> None:
    assert not detect(body(text, subject), CONFIG).phi


def test_word_names_and_capitals_are_read_whole() -> None:
    assert names("RE: DRUMMOND, ADAEZE J.\nThe consult is confirmed.") == ["DRUMMOND, ADAEZE J."]
    assert names("Journey Whitaker's A1C came back at 8.1.") == ["Journey Whitaker"]
    # A building, not a person: no name at all.
    assert names("Parking outside Calvin Brooks Hall closes at 6 for the CT delivery.") == []


@pytest.mark.parametrize(
    "text",
    [
        # A booking with a provider in a patient's line counts under a staff topic
        # elsewhere in the message (a vendor, an interpreter ticket).
        "Orthotics delivery\nTheodore Q. Marsh - brace fitting on June 9, 2027 at 10:30 AM."
        "\nThe vendor will bring samples; keep the order from Dr. Nakamura handy.",
        # "Proctor" is a surname too, not only a teaching session's word.
        "Parking pass ticket\nFor: Lionel Proctor, Urology with Dr. Sato on 1/9/2027 at 8 AM",
        "Sign language interpreter ticket\nPatron: ASL\n"
        "For: Rosalind Achebe, Neurology with Dr. Lindqvist on 4/17/2027 at 2:15 PM",
        # "For:" labels the person a booking is for; a given name may close a line.
        "Transport ticket\nFor: Hector Villanueva, Oncology with Dr. Grant on 3/2/2027 at 9 AM",
        "Your physical therapy session with our clinic is confirmed, Priya.\n"
        "When: 5/12/2027, 3:30 PM",
    ],
)
def test_bookings_with_a_provider_under_a_staff_topic(text: str) -> None:
    assert phi(text)


@pytest.mark.parametrize(
    "text",
    [
        "The team lunch is on Friday with Dr. Patel from cardiology",
        "Lunch with Dr. Patel on Friday at 12:30 PM",
        "Grand rounds: Dr. Okafor presents on 3/4 at 7 AM",
        # A staff topic in the name's own line keeps a booked time a staff event.
        "Lunch with Jane Doe and Dr. Patel on Friday at 12:30 PM; the vendor pays.",
        "Staff meeting\nGerald Pike presents the budget on 3/4 at 9 AM with Dr. Ruiz",
        "Training: Dr. Abara hosts the workshop on 6/2 at 1 PM, Yolanda Briggs presenting.",
        # Teaching sessions are staff topics: a simulation lab is no patient's lab.
        "Fellows: Odile Brandt proctors the Hernia Repair skills lab on 5/3/2027 at 2 PM."
        " Sign-up sheet in the library.",
        # A date alone books no visit; Spanish staff notices are staff topics.
        "Rota update\nWendell Agyeman covers the ward on 2027-02-11, Dr. Kowal backs up.",
        "Aviso al personal: Renata Salgado cubre el turno del 2027-03-02 a las 7; "
        "el Dr. Ortega queda de respaldo.",
        # A booking with no provider or service anywhere near.
        "IT ticket: Martin Osei - laptop swap on 3/14 at 10:15 AM in room 4.",
        # A given name closing a line after a sign-off is a signature.
        "See you then,\nThanks, Priya.\n",
    ],
)
def test_staff_bookings_with_a_provider_stay_clean(text: str) -> None:
    assert not phi(text)
