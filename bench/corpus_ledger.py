"""Ledger phrasings of the round-two corpus families (bench/corpus.py): the next judge.

DO NOT READ THIS FILE WHEN TUNING A DETECTOR, and do not generate the ledger split
(`bench/corpus.py --split ledger`) or score it (`bench/phi_accuracy.py --split ledger`)
while a detector is being worked on, not even for aggregate counts. Run it once, on a
finished detector, and report the figures as they come; a run that leads to more
detector changes uses the split up.

It holds LEDGER_BOOK: for every round-two family, mail as a hospital's relay sees it
from voices the other books were not written in: dialysis units, audiology and
hearing-aid centres, maternity wards and midwives, nursing homes and long-term care,
clinical-trial coordinators, pharmacy benefit managers, durable medical equipment
suppliers, home-health aides' shift notes, podiatry, speech and cardiac-rehab
therapists, allergy, fertility, memory and sexual-health clinics, blood donation
centres, orthodontists, community paramedics and respite care, and reminders written
the way veterinary practices write them; and in shapes people and machines make:
forwarded chains with quoted "> " lines, "On ..., X wrote:" replies, auto-generated
tickets, tab-separated and markdown-table rows, voicemail transcripts, fax cover sheets
read back by OCR, bulleted shift hand-offs and lower-case mobile messages with few
commas. PHI families name a patient with a health fact, visit, test, prescription,
result, provider or service about them, in every position: first on a line before
":" or "," or ";", inside a sentence, after greetings with and without a comma, as a
vocative at the end, in lists and tables, after "pt", "re:", "cc", "for", "about" and
"regarding", as a possessive, in parentheses, as "Last, First M.", in capitals, with
hyphenated, multi-part and particle surnames ("van der", "af", "dos", "ter"),
apostrophes and names that are common words. The negative families have the same
shapes with no patient in them: on-call lists and rotas, continuing-education
speakers, foundation donor thank-yous, wards, streets, awards and buildings named
after people, vendor representatives and recalls, IT and facilities tickets naming
staff, news digests naming politicians and celebrities next to health words,
researchers' author lines and obituaries of retired physicians.

It has its own name pools, and draws 50% of its patients', staff's and clinicians'
names from Latin-script Faker locales other than en_US, weighted towards Finnish,
Indonesian, Zulu, Slovak, Estonian, Latvian, Slovene, Danish, Swahili and Thai-English
names (a mix unlike the other books'). It was written apart from the detector and its
word lists and without reading the other books' sentences; tests/test_corpus.py checks
that no template is shared with another book or a word swap of one, and that no name
pool entry is shared.
"""

from __future__ import annotations

from corpus import Phrasebook

# (Faker locale, weight). Each gives Latin-script names of its own (checked by
# tests/test_corpus.py). Left out: es_AR and az_AZ (some names end in a space, which a
# name at the end of a line would lose), and the locales without a person provider of
# their own, whose names are en_US ones (fil_PH, tl_PH, en_CA, en_PH, en_AU).
NAME_LOCALES: tuple[tuple[str, float], ...] = (
    ("fi_FI", 0.12),
    ("id_ID", 0.10),
    ("zu_ZA", 0.09),
    ("sk_SK", 0.07),
    ("et_EE", 0.06),
    ("lv_LV", 0.06),
    ("sl_SI", 0.06),
    ("da_DK", 0.06),
    ("sw", 0.05),
    ("en_TH", 0.05),
    ("is_IS", 0.04),
    ("de_AT", 0.04),
    ("hr_HR", 0.04),
    ("cs_CZ", 0.03),
    ("fr_CA", 0.03),
    ("en_IN", 0.03),
    ("ha_NG", 0.03),
    ("sv_SE", 0.02),
    ("no_NO", 0.02),
)
NAME_LOCALE_SHARE = 0.5

LEDGER_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "Chair assignment from the {org} kidney unit\n"
            "{patient}: chair {room}, {weekday} run starting {time}.\n"
            "Your {procedure} review with {doctor} follows the run on {date}.\n"
            "Step on the scale before you sit down. Desk: {phone}",
            "It's that time again, {first}!\n"
            "Our records say you're due for your {procedure}.\n"
            "We've pencilled you in for {date} at {time} with {doctor} - tap YES to keep "
            "the slot,\nor ring {phone} and we'll find another.\n"
            "Woofs and wags are optional; bring your insurance card.",
            "<<audio message, 38 seconds, converted to text>>\n"
            "hi this message is for {patient} um calling from the hearing centre at {org}\n"
            "just to remind you about your hearing aid fitting on {date} at {time} with "
            "{doctor}\nif that no longer suits give us a ring on {phone} ok bye",
            "AUTO-TICKET 4471-{room}  status=BOOKED\n"
            "patient: {patient}  born {dob}\n"
            "slot: {date} {time}  bay {room}\n"
            "exam {procedure} / requester {provider}\n"
            "prep: nothing to eat for six hours beforehand",
            "hey {first} its {staff_first} from cardiac rehab\n"
            "ur treadmill session moved to {date} {time}\n"
            "wear trainers n bring ur heart rate strap\n"
            "txt back if that dont work",
            "Antenatal clinic booking\n"
            "{patient} ({dob}) is booked for the glucose tolerance check at 28 weeks on "
            "{date}, {time}.\nMidwife-led clinic, room {room}. Fast from midnight; "
            "water is fine.",
            "Allergy clinic: skin-prick testing for {patient} is set for {date} at {time}.\n"
            "Stop antihistamines five days before; {doctor} will read the wheals after "
            "twenty minutes.",
            "patient_name,born,visit,clinician,when\n"
            "{patient},{dob},{procedure},{doctor},{date} {time}\n"
            "(export from the orthodontic recall list - reply to confirm)",
            "Footcare reminder\n"
            "Nail and callus clinic for {patient}: {date}, {time}, podiatry room {room}.\n"
            "Diabetic foot check included. Wear the shoes you walk in most.",
            "Memory clinic - second visit for {patient}\n"
            "{weekday} {date} at {time}. Please come with the relative who filled in the "
            "questionnaire;\nthe visit lasts about ninety minutes with {doctor}.",
            "Blood donor centre: {first}, you are eligible to give plasma again from "
            "{date}.\nYour pre-donation {test} was {value}; eat something before "
            "you come.",
        ),
        "refill_reminder": (
            "Member notice from your pharmacy benefit manager\n"
            "{patient}, the 90-day mail-order supply of {drug} {dose} ships once you "
            "approve it.\nApprove by {date} or the order is held. Member line: {phone}",
            "Supply replenishment - {company}\n"
            "Our file shows {patient} can have new CPAP cushions and filters from {date}.\n"
            "Prescriber on file: {provider}. Reply SHIP and we post them to the address "
            "we hold.",
            "Med room note, {org} nursing home\n"
            "Resident {patient}, room {room}: the {drug} blister packs run out {weekday}.\n"
            "{staff_first}, please fax the renewal to {doctor} before the evening med round.",
            "{first} ur {drug} is waiting at {pharmacy} counter 2\n"
            "we shut at 9 tonight bring ur card\n- pharm crew",
            "-----Forwarded Message-----\n"
            "From: refill line, {org}\n\n"
            "> {patient} is asking for an early repeat of {drug} {dose}.\n"
            "> Last dispensed {date}; the plan lets it go after day 23.\n\n"
            "{doctor}, can you sign this off? I said we'd ring back on {phone}.",
            "Time for a top-up, {first}!\n"
            "The {drug} we send you every month is due for renewal on {date}.\n"
            "As before we'll ask {doctor} to sign - no visit needed unless your {dose} "
            "changes.",
            "{patient} - glaucoma drops ({drug}) renewal authorised by {doctor} for three "
            "bottles;\ncollect from {pharmacy} any time after {date}.",
            "PBM auto-notice #RX{room}19\n"
            "Prior refill for {patient} rejected: quantity limit on {drug} exceeded.\n"
            "Prescriber {provider} has been asked for a new script; nothing for you to do "
            "yet.",
            "Respite house medicines check-in\n"
            "{patient} arrives {weekday} for a week of respite care; please send enough "
            "{drug} ({dose}) for 7 days\nin the original boxes, labelled by {pharmacy}.",
            "EpiPen expiry alert for {patient}: both auto-injectors lapse on {date}.\n"
            "Allergy nurse {staff} has asked {doctor} for a fresh pair.",
            "Cardiac rehab pharmacist here - {first}, keep taking the {drug} {dose} every "
            "morning; the next 28 days are with {pharmacy} and can be picked up from "
            "{weekday}.",
        ),
        "result_notice": (
            "Your hearing test results\n"
            "{first}, the audiogram from {date} shows {diagnosis} on the left side.\n"
            "{doctor} suggests a hearing aid trial; an audiologist will phone you from "
            "{phone}.",
            "Study visit outcome - research office, {org}\n"
            "Participant {patient} (enrolled {date}): {test} came back at {value}, inside "
            "protocol limits.\nNo change to study medication. The next visit window "
            "opens {weekday}.",
            "Quoting {staff}, {weekday} {time}:\n"
            "> any word on the ultrasound for {patient}?\n\n"
            "Yes - {doctor} read it this morning; it fits with {diagnosis}.\n"
            "I've asked reception to book the follow-up for {date}.",
            "hi {first} its the surgery ur {test} came back {value}\n"
            "better than last time {doctor} says keep going on the {drug}\n"
            "no need to come in",
            "{patient}, your postnatal bloods are back: {test} {value}.\n"
            "The maternity team at {org} will talk them through at the six-week check on "
            "{date}.",
            "Fertility clinic update for {patient}\n"
            "Day-21 {test}: {value}. {doctor} would like to discuss {procedure} at your "
            "next consultation.",
            "Blood donation centre\n"
            "Thank you for giving on {date}, {first}. Your sample showed a low {test} "
            "({value}),\nso we have paused donations for six months and written to "
            "{provider}.",
            "Orthodontic progress scan for {patient} ({date}): roots look healthy, no "
            "resorption.\nBraces off in about four months, says {doctor}.",
            "LAB PUSH >> {patient} >> {test}={value} >> inbox of {doctor}\n"
            "Auto-message from the allergy lab. Do not reply to this address.",
            "Sexual health clinic: {first}, your tests from {date} are all clear except "
            "one that needs treatment.\nPlease call {phone}; we will not leave details in a "
            "voicemail.",
            "Sleep study scored for {patient}: {diagnosis}, 24 events an hour.\n"
            "{doctor} recommends a CPAP trial; {company} will phone to fit the mask.",
        ),
        "care_handoff": (
            "Aide shift note {date}\n"
            "Client: {patient}\n"
            "* BP a bit high this am, rang it through to {doctor}\n"
            "* helped with shower + dressing, heels ok\n"
            "* {drug} given from the dosette box at {time}\n"
            "Evening aide: {staff_first}",
            "Palliative team handover, {org}\n"
            "{patient} moved to comfort measures for {diagnosis} overnight; family at the "
            "bedside.\nSyringe driver running. {colleague} takes symptom calls until 8.",
            "A shift -> B shift\n"
            "- {patient}, chair {room}: fistula oozed after needles out, held pressure 15 "
            "min\n- post-run weight logged; {doctor} to reset the dry weight on {date}",
            "Transfer sheet to {org}\n"
            "Resident: {patient}, born {dob}\n"
            "Why: possible {diagnosis}, new confusion since {time}\n"
            "Sent with: {drug} {dose}, glasses, hearing aids\n"
            "Next of kin rung by {staff}.",
            "From the school nurse's room\n"
            "{first} came in at {time} pale and shaky. Known {diagnosis}; I gave the "
            "{drug} from the care plan box and phoned home.\nPlease pass to {doctor}.",
            "speech therapy -> {colleague}\n"
            "{patient} 3 weeks after the stroke, swallowing thin fluids ok now, still "
            "coughs on bread.\nsoft diet until you review, {date}",
            "Community paramedic visit\n"
            "Saw {patient} at home after a fall; no injury found, {test} {value}.\n"
            "Handing to {doctor}'s practice for a medication review.",
            "Respite handback to family\n"
            "{patient} ate well, slept most nights. Two loose stools {weekday}, settled.\n"
            "{drug} given at 8 and 8; tablets left in the bag. Memory a bit worse in the "
            "evenings.",
            "cardiac rehab -> community team\n"
            "pt {patient}, 8 wks post {procedure}, walks 20 min without chest pain now\n"
            "BP {value} at last class. discharged to your care, {colleague}",
            "Lab courier log {date}, stop 3\n"
            "Box handed over by {staff}: samples for {patient} ({test}) plus two "
            "others.\nTemp check ok. Recipient signed at {time}.",
            "Midwife handover (night -> day)\n"
            "Bed {room}: {patient}, 38 weeks, {diagnosis}, BP stable, CTG reassuring.\n"
            "{doctor} to review before breakfast re: induction.",
        ),
        "billing_question": (
            "PRIOR AUTH DESK  ref PA-{room}88\n"
            "Member: {patient} | DOB {dob}\n"
            "Requested service: {procedure} - clinician {provider}\n"
            "Dx on the request: {diagnosis}\n"
            "Status: pending - need chart notes by {date}",
            "{first}, about your orthodontic account: the plan paid part of the braces "
            "adjustment on {date},\nleaving {amount} for you. Want to split it into "
            "monthly payments? Billing: {phone}",
            "{patient} replied on {date} via the portal:\n"
            "> why was i charged {amount} for hearing aid batteries i thought they were "
            "covered\n\n"
            "Hello - batteries are covered once a year on your plan. {staff} is checking "
            "whether an exception applies.",
            "Rental account query\n"
            "Customer: {patient}\n"
            "Item: hospital bed with pressure mattress, month 4 of 13\n"
            "Balance {amount}. We need a new face-to-face note from {doctor} before we "
            "can bill Medicare.",
            "Re: the delivery bill for {patient}\n"
            "The {amount} line is the anaesthetist's epidural fee, billed by {company} on "
            "its own.\nThey can be reached on {phone}.",
            "hi this is {patient} i got a bill for {amount} for the podiatry visits\n"
            "can someone explain my insurance said the nail surgery was approved??",
            "Claim rejected - explanation for {patient}\n"
            "The PBM refused {drug} as non-formulary on {date}. Options: ask {doctor} for "
            "an alternative\nor pay {amount} now and we will help you appeal.",
            "DME billing desk\t{date}\n"
            "{patient}\twheelchair cushion\t{amount}\tawaiting prescription from "
            "{provider}",
            "Hi, ringing back about the fertility clinic invoice for {first}: the "
            "{procedure} was self-pay, {amount},\nbecause the plan excludes it. Call "
            "{phone} if you want a breakdown.",
            "Question from the front desk: does {patient}'s plan cover the second "
            "hearing aid, or only one? Quote is {amount}.",
        ),
        "clinical_note": (
            "Dental chart entry {date}\n"
            "Pt {patient}. Complaint: cracked lower molar, hurts on biting.\n"
            "Hx {diagnosis}, on {drug}. Plan: {procedure}, crown prep next visit.\n"
            "{provider}",
            "Memory clinic first assessment\n"
            "Name: {patient} / born {dob}\n"
            "Daughter reports word-finding trouble for a year. Cognitive score 21/30.\n"
            "Impression: {diagnosis}. Bloods incl. {test} ordered; review with {doctor}.",
            "S: {first} says the shoulder is stiffer first thing.\n"
            "O: flexion 120 deg, power 4/5; background {diagnosis}.\n"
            "A: slow gains after {procedure}.\n"
            "P: twice weekly, home programme, {doctor} to review {date}.",
            "Hospice RN home visit - {patient}, {time}\n"
            "Pain settled on {drug} {dose}. Eating very little. Family coping, bereavement "
            "team aware.\nPrimary illness: {diagnosis}.",
            "Speech-to-text of a message left from {phone}\n"
            "hi doctor its {patient} ringing about my {diagnosis} the new {drug} makes me "
            "dizzy in the afternoons\ncan somebody call me back today please",
            "Adverse event log, trial site {org}\n"
            "Subject {patient}: grade 2 nausea after dose 3. {test} {value}.\n"
            "Investigator {provider}: possibly related; continue and watch.",
            "Sexual health clinic note: {patient} attended {date} for screening; {test} "
            "sent, treated for {diagnosis} with {drug} today. Partner notification "
            "discussed.",
            "Allergy clinic note - {patient}, DOB {dob}\n"
            "Hx: swelling of lips after peanuts age 6. Skin prick today: peanut 9 mm, "
            "control 0.\nPlan: adrenaline pens, dietitian, review with {doctor}.",
            "Podiatry: {patient} - left hallux nail removed under local ({procedure}). "
            "Background {diagnosis}. Dressing daily; review {date}.",
            "speech + language session {date}\n"
            "client {patient}, voice therapy for {diagnosis}\n"
            "pitch glides done x10, hydration advice, home practice twice daily",
            "Fertility consult - {patient}, {dob}\n"
            "Cycle irregular, {test} {value}. Plan: {procedure} next cycle; counselling "
            "offered.",
        ),
        "name_line_start": (
            "{patient}: dialysis moves to the {weekday} afternoon run from {date}, same "
            "chair, same nurse.\n- {org} kidney unit",
            "{patient}, your hearing aid is back from repair and can be collected at the "
            "front desk.\n{org} audiology",
            "{patient} - crown fitted today, bite adjusted. The numbness wears off in two "
            "to three hours.\n{doctor}",
            "{patient}: the CPAP download shows 3.1 hours a night; {doctor} wants a call "
            "about your sleep apnoea.",
            "{first}: your trial contact lenses have arrived. Fitting with {doctor} on {date}.",
            "{patient}; flu jab left arm at {time}, batch logged. Wait 15 min before leaving.",
            "{patient} -- {test} repeat is due {date}, lab slip is at reception.",
            "{patient}, the allergy team has booked your food challenge for {date}; no "
            "antihistamines for 5 days before.",
            "{first} - braces adjustment went fine today. Sore teeth for a day or two is "
            "normal; paracetamol if needed.",
            "{patient}: your blood donation was not used because of a low {test}. "
            "Please see {doctor}.",
            "{patient} (room {room}) - refused breakfast and the {drug}; daughter informed.",
        ),
        "name_inline": (
            "The night aide says {patient} slipped in the bathroom but would not go to "
            "A&E; {doctor} will call round on {date}.",
            "Route 6 picked up tubes for {patient} and four others this morning; the "
            "{test} tube was haemolysed and needs redrawing.",
            "We fitted {patient} with varifocals last week and close work is still blurry, "
            "so a recheck is booked for {date}.",
            "Our Somali interpreter sat with {patient} through the consent for "
            "{procedure} and confirmed the risks were understood.",
            "I spoke with the mum of {patient} about the asthma plan for school; the "
            "{drug} inhaler now lives in the nurse's cupboard.",
            "The study coordinator tells me {patient} missed the week 8 visit and has "
            "taken no study tablets since {date}.",
            "ok so {patient} came in for the root canal and the tooth split, had to send "
            "them on to {colleague}",
            "Just a heads up that {patient} is pregnant again and wants the booking "
            "bloods done with us on {date}.",
            "During the falls class {patient} became breathless, so we stopped and "
            "called {doctor}; sats were fine after rest.",
            "could u ring {patient} back about the podiatry referral, apparently nobody "
            "called about the foot ulcer",
            "Records show that {patient} gave blood on {date}, and the donation was "
            "discarded after a positive {test}.",
            "The paramedic left {patient} at home with a leaflet on {diagnosis} and "
            "asked the GP surgery to follow up.",
        ),
        "name_greeting": (
            "Afternoon {patient} - a note from the hearing centre:\n"
            "your new ear moulds are ready at {org}. Fitting is on {date} at {time}.",
            "Hello {first}\n"
            "A quick note after today's physio: keep icing the knee after the "
            "{procedure} and skip the step drill until {weekday}.",
            "Morning {patient} - {doctor} has lowered your dry weight, so the dialysis "
            "nurses will explain the new target at your next run.",
            "{first} hi,\n"
            "the test strips for your glucose meter left our warehouse today. "
            "Questions: {phone}\n{company}",
            "Greetings {patient}!\n"
            "We miss that smile - your last scale and polish was on {date}. Book online "
            "or call {phone}.",
            "Hi there {first}! Your maternity ward tour is {weekday} at {time}. Bring "
            "your birth plan and the list of medicines, including {drug}.",
            "Hiya {first},\n"
            "just checking the new hearing aids are comfy. Any whistling, pop in "
            "{weekday} - no appointment needed.\n{staff_first} @ {org}",
            "Hej {patient}\n"
            "Your implant review at the dental practice is on {date}; {doctor} will "
            "x-ray the post.",
            "Good evening {first}, the midwives asked me to check how feeding is going "
            "since you went home on {date}.",
            "Hello once more, {patient} -\n"
            "this is the PBM pharmacist. Your {drug} now needs a prior authorisation; "
            "we have asked {doctor}.",
            "Thanks for coming to the memory clinic today, {first}. Your next review is {date}.",
        ),
        "name_list": (
            "Kidney unit - {weekday} chair list\n{items}\n"
            "Ring the charge nurse on {phone} if anyone is running late.",
            "Courier pickup log, route 4, {date}\n{items}\n"
            "Cool box at 4 C throughout. Signed {staff}",
            "{staff_first}'s hospice round, tomorrow\n{items}\n"
            "Bereavement calls are on the other sheet.",
            "Pupils who take medicine in school\n{items}\n"
            "Spare inhalers are in the cabinet by the office door.",
            "Trial participants due this week\n{items}\nBring the drug accountability binder.",
            "Respite care bookings, {date}\n{items}",
            "Podiatry list {date} (room {room})\n{items}\nWalk-ins after 3 pm only.",
            "PBM rejections to work today\n{items}\nEscalate anything over five days old.",
            "Maternity ward board round\n{items}\nConsultant: {doctor}",
        ),
        "name_table": (
            "Export from the audiology booking system\n{table}\nRows sorted by clinician.",
            "tab-separated paste from the dialysis census\n{table}",
            "Equipment delivery manifest, {date}\n{table}\nDriver on the van: {staff}",
            "Screening log, trial site {room}\n{table}\n"
            "Screen failures are flagged in the coordinator's copy.",
            "{org} - nursing home medication review\n{table}\nPharmacist sign-off due {weekday}.",
            "Respite bookings for the quarter\n{table}\nBeds are held until noon on arrival day.",
            "Podiatry nail-surgery list\n{table}",
            "Copied from the fertility lab spreadsheet - please check before uploading\n{table}",
        ),
        "name_shape": (
            "F AX  COVER SHEET\n"
            "TO: medical records, {org}    FROM: {company}\n"
            "RE: {patient}    DOB: {dob}\n"
            "Pag es: 4 incl cover. Enclosed: {procedure} report and {test} results.\n"
            "CONFIDENTIAL - received in error? call {phone}",
            "re: {patient} - wound check after {procedure}, healing nicely, stitches out {date}",
            "cc {patient}\n"
            "Copy of my letter to {doctor}: the {diagnosis} has been stable for a year, so "
            "we will see you yearly from now on.",
            "Ticket #{room}-5521 opened through the portal\n"
            "Requester: {patient}\n"
            "Category: medicine question\n"
            "Text: can i take ibuprofen with my {drug}",
            "Please book {patient} ({dob}) for {procedure}; question to answer: is this "
            "{diagnosis}? Ordering clinician {provider}.",
            "| patient | visit | clinician |\n"
            "|---|---|---|\n"
            "| {patient} | {procedure} booked {date} | lead clinician {doctor} |",
            "{patient}'s hearing aids were reset to programme 2 at today's audiology "
            "appointment with {doctor}.",
            "Maternity board: bed {room} - {patient} - induced {date} - baby girl, feeding well",
            "Regarding {patient}: foot ulcer reviewed in podiatry, dressing changed, "
            "{diagnosis} noted.",
            "Speech therapy for {patient} continues on {weekday}s; the stammer is easing.",
            "pt {patient} seen in allergy clinic {date}, hives after {drug}, added to allergy list",
            "Voicemail for {doctor}: it's the pharmacy about {patient} - the {drug} "
            "dose looks high, call {phone}.",
            "SUBJECT ID / NAME: {patient}\n"
            "Visit: week 12 ({date})\n"
            "Deviation: {test} drawn outside the window",
            "Please cc {patient} on the discharge letter for {procedure}; they asked "
            "for their own copy.",
            "Ms/Mr {patient}, your hearing test is on {date} at {time}; allow an hour.",
            "A note about {patient}: still losing weight on dialysis, dietitian referral made.",
            "{patient}\t{dob}\t{diagnosis}\tcensus bed {room}",
            "Bay 4 (pt: {patient}) - {drug} infusion due at {time}, pump keeps alarming.",
            "> > On the ward round {doctor} said {patient} can go home once the "
            "{test} is back.\n> noted, transport booked for {weekday}\nthanks all",
        ),
        "neg_staff": (
            "Kidney unit rota swap\n"
            "{doctor} takes the {weekday} evening round from {colleague}. {staff} covers "
            "the water plant checks.\nNurse pairings stay as they are.",
            "Hi all,\n"
            "Practice meeting {weekday} at {time} in the back office. {provider} will walk "
            "us through the new autoclave log. Lunch is on {staff_first}.",
            "Retirement drinks for {colleague}, leaving after 31 years in {specialty}.\n"
            "Meet in the lobby of {building} at 5 pm on {date}.",
            "-----Forwarded Message-----\n"
            "From: {staff}\n"
            "> Could someone from audiology cover the booth calibration on {weekday}?\n\n"
            "{staff_first}, are you able to take this one? Cheers.",
            "hey its {staff_first} stuck in traffic, can {doctor} start huddle without me\n"
            "back by {time}",
            "CE session: {provider} speaks on new guidance for {diagnosis} in older adults, "
            "{date} at {time}, room {room}. One credit.",
            "In memoriam: {provider}, who ran the {specialty} service here for twenty "
            "years before retiring, died peacefully on {date}.\nA memorial gathering will "
            "be held in {building}.",
            "{staff}: your CPR refresher certificate is ready to pick up from the "
            "education centre.",
            "Thanks for covering the dialysis night shift, {staff_first}.",
            "Re: {provider} - the journal club slot on {diagnosis} moves to {weekday}; "
            "bring your own lunch.",
            "Welcome back {doctor}! The maternity team is glad to have you after your sabbatical.",
            "cc {staff}\n"
            "Minutes of the audiology governance meeting {date}: equipment log "
            "reviewed, no incidents.",
        ),
        "neg_provider": (
            "Palliative medicine on-call, week of {date}\n"
            "Days: {doctor}\n"
            "Nights: {colleague}\n"
            "Social work: {staff}\n"
            "Switchboard: {phone}",
            "Optometry directory change\n"
            "{provider} - {specialty} - takes new referrals from {date}\n"
            "Referral fax: {phone}",
            "--\n{provider}\n{specialty} | {org}\n{street}\nDirect {phone}",
            "Interpreter bookings: {staff} on weekdays, the duty coordinator after "
            "{time}.\nSign language needs 48 hours' notice.",
            "Locum note: {doctor} holds the {weekday} dental list while {colleague} is "
            "away; the practice has already written to everyone booked.",
            "Rehab gym staffing {date}\n"
            "- {doctor}: outpatient gym\n"
            "- {colleague}: hydrotherapy pool\n"
            "- {staff}: front desk",
            "{doctor} (podiatry) and {colleague} (orthotics) now run a joint "
            "foot clinic on {weekday}s.",
            "Speaker for the {date} nursing study day: {provider}, on pressure ulcer prevention.",
            "name,role,extension\n{staff},charge nurse,{room}\n{provider},consultant,{room}",
            "Auto-reply: {provider} returns {date}; sleep lab queries meanwhile go to {colleague}.",
        ),
        "neg_public": (
            "News digest: {public} tabled a bill to widen Medicaid cover for hearing "
            "aids; a vote is expected on {date}.",
            "In the headlines: {public} talked openly about living with {diagnosis} and "
            "urged listeners to get screened.",
            "Press clipping - {public} toured the new kidney wing at {building} and "
            "thanked the nurses.",
            "Gala night: {public} gives the keynote on {date}; proceeds go to the hospice garden.",
            "Podcast recap: {public} and {provider} on vaccine myths and the {drug} shortage.",
            "Weekend reading: a profile of {public}, who trained as a midwife before "
            "going into public life.",
            "{public} underwent {procedure} last month, the press office said; "
            "fans sent flowers to the hospital.",
            "Quote of the week, from {public}: health care is a right, not a privilege.",
            "Morning briefing: {public} pushes for cheaper insulin; drugmakers respond.",
        ),
        "neg_place": (
            "Visitors: the maternity ward has moved to level 3 of {building}. After 8 pm "
            "use the {street} entrance.",
            "Parking at the kidney centre on {street} shuts for resurfacing from {date}; "
            "staff should use the {building} car park.",
            "This year's student nurse bursary comes from the {fund}; presentation in "
            "{building}, room {room}.",
            "Estates: water off in {building} on {weekday} from {time}. The audiology "
            "booths on the ground floor are not affected.",
            "Directions to the new eye clinic: 1200 {street}, beside {building}.",
            "Donor thanks: the {fund} paid for two new hospice family rooms. Thank you "
            "to everyone who gave.",
            "The {fund} prize for excellence in midwifery goes to the whole ward team this year.",
            "New signage: {building} is now home to audiology, podiatry and the sleep lab.",
            "Road closure on {street} {weekday}; ambulances will come in by the back gate.",
        ),
        "neg_company": (
            "Rep visit: someone from {company} will show the new hearing aid range in the "
            "staff room on {weekday}, {time}.\nNo bookings that afternoon.",
            "Field safety notice from {company}: some CPAP humidifier chambers are "
            "affected. Check the equipment cupboard against the lot list.",
            "Invoice {room}-77 from {company} for dental impression material, {amount}, net 30.",
            "{company} has bought our wheelchair supplier; orders placed after {date} go "
            "through their portal.",
            "Compliance reminder: gifts from {company} worth more than $50 must be "
            "declared by {date}.",
            "{company} rep {staff} will drop off insulin pump samples on {date}; "
            "please sign the log.",
            "Purchase order for {company}: 40 boxes of hearing aid domes, {amount}.",
            "Legal has signed the three-year {company} agreement covering hearing aid "
            "batteries; it starts {date}.",
        ),
        "neg_hr_it": (
            "INC-{room}0931 resolved\n"
            "Requester: {staff}\n"
            "Issue: dictation headset not seen by the reporting workstation\n"
            "Fix: driver reinstalled by {staff_first}",
            "Please welcome {staff}, our new interpreter services coordinator, from "
            "{date}. Desk on level 2 of {building}.",
            "Payroll: aide timesheets are due {weekday} by {time}. Queries to {staff}.",
            "Facilities job: the dental suite autoclave is leaking again. Raised by "
            "{staff}; engineer booked {date}.",
            "Password reset for {staff} on the benefits portal is done; change it at first login.",
            "Door badge for {doctor} now opens the maternity ward until {date}, as "
            "{colleague} asked.",
            "Ticket #{room}5 - printer in the allergy clinic jams on labels. Assigned to {staff}.",
            "{staff_first}, your laptop is fixed and ready for collection from the IT hatch.",
            "Leave approved for {staff} from {date}; {doctor} signs off the rota.",
        ),
        "neg_newsletter": (
            "The Kidney Corner - quarterly from {org}\n"
            "This issue: {doctor} explains home dialysis and what a fistula is.\n"
            "Also: low-potassium recipes and hello from our new {specialty} lead.",
            "Research round-up: {provider}, {colleague} and {staff} co-wrote a paper on "
            "{diagnosis} outcomes in rural clinics, out this month.",
            "Ask the audiologist: {doctor} takes your questions on tinnitus and loud concerts.",
            "Open day {date}: free hearing, eye and dental screening for the public, led "
            "by {doctor}.",
            "Hospice awareness month: join {provider} for a talk on advance directives in "
            "{building} at {time}.",
            "Authors: {provider}; {colleague}; {staff}. Title: Falls after {procedure} "
            "in a rehab cohort. Poster at the spring meeting.",
            "Meet the team: {doctor} joined our fertility service from {org} and loves cycling.",
            "With thanks to {staff} and family, whose gift bought two new reclining "
            "chairs for the kidney unit.",
            "Staff bulletin - {staff} swam the lake crossing and raised {amount} for the "
            "kidney unit's day room.",
        ),
    },
    subjects={
        "default": (
            "Note from {org}",
            "Secure mail waiting",
            "FW: from reception",
            "Your clinic wrote back",
            "fwd",
        ),
        "appt_reminder": ("Chair {room} on {weekday}", "Due for a check-up", "Booking {date}"),
        "refill_reminder": ("Approve your mail-order supply", "Repeat due {date}", "Top-up time"),
        "result_notice": ("Results in", "{first}, results released", "Lab push {date}"),
        "care_handoff": ("Aide shift note", "A to B shift", "Handing over {weekday}"),
        "billing_question": ("PA desk update", "Balance query", "Statement {date}"),
        "clinical_note": ("Chart entry {date}", "Visit note", "Consult letter"),
        "name_line_start": ("Short one", "Update {weekday}"),
        "name_inline": ("Night report", "Heads up", "Re: {patient}"),
        "name_greeting": ("Hello from the practice", "{first}, a quick note"),
        "name_list": ("List for {weekday}", "Pickup log", "Board round"),
        "name_table": ("Census paste", "Manifest {date}", "Sheet export"),
        "name_caps": ("FAX RE {patient}", "PORTAL TICKET", "SCAN {date}"),
        "name_last_first": ("Chart copy: {patient}", "Booking form"),
        "name_compound": ("About {patient}", "cc: {patient}"),
        "name_apostrophe": ("For {patient}", "Case {room}"),
        "name_common_word": ("{patient} - update", "Regarding {first}"),
        "neg_staff": ("Rota swap", "Retirement drinks", "CE session {date}"),
        "neg_provider": ("Who holds the bleep", "Directory change", "Speakers"),
        "neg_public": ("News digest", "Gala keynote", "Clippings {date}"),
        "neg_place": ("Estates notice", "Donor thanks", "Signage"),
        "neg_company": ("Rep visit {weekday}", "Field safety notice", "PO raised"),
        "neg_hr_it": ("INC resolved", "Welcome aboard", "Leave approved"),
        "neg_newsletter": ("The Kidney Corner", "Research round-up", "Staff bulletin"),
    },
    covers=(
        "Front desk scan enclosed.",
        "File attached for {patient}.",
        "Attachment enclosed; original kept in the blue binder.",
        "Enclosed as discussed.",
    ),
    list_items=(
        "{patient} - {procedure}, {time}",
        "{patient} ({dob}): {diagnosis}",
        "{patient} -> {drug} {dose}",
        "{patient}, {test} tube, taken {time}",
        "{patient} / {doctor} / {date}",
        "{patient}: balance {amount}",
    ),
    table_layouts=(
        (("Client", "patient"), ("Born", "dob"), ("Fitting", "procedure"), ("With", "doctor")),
        (("Resident", "patient"), ("Med", "drug"), ("Dose", "dose"), ("Review", "date")),
        (("Participant", "patient"), ("Screened", "date"), ("Assay", "test"), ("Level", "value")),
        (("Pt", "patient"), ("Run", "time"), ("Dx", "diagnosis")),
        (("Deliver to", "patient"), ("Needed for", "diagnosis"), ("Prescriber", "provider")),
    ),
    compound_surnames=(
        "dos Santos Valente",
        "ter Brugge",
        "af Ekström",
        "van der Merwe-Dube",
        "zu Stolberg-Hahn",
        "Virtanen-Laine",
        "Kowalczyk-Brandt",
        "van der Westhuizen",
        "af Klercker",
        "Nkosi-Mahlangu",
        "Hakala-Ojala",
        "Sastrowardoyo-Lim",
        "Kesküla-Tamm",
        "Ozola-Bērziņa",
        "Novak-Horvat",
        "de la Fuente-Oyelaran",
        "Saint-Onge",
        "Ben-Haim Levy",
        "Mäkinen-Rautio",
        "Mthembu-Ngcobo",
        "van Aswegen",
        "Lopes da Cunha",
        "El-Amin Carter",
    ),
    apostrophe_surnames=(
        "N'Goran",
        "D'Hondt",
        "D'Ascenzo",
        "O'Riordan",
        "O'Fallon",
        "D'Auria",
        "N'Dri",
        "O'Meara",
        "Fa'amausili",
        "D'Alpaos",
        "D'Aoust",
        "O'Hagan",
        "O'Mahony",
        "D'Arcy-Nkosi",
    ),
    common_word_first=(
        "Memory",
        "Comfort",
        "Innocent",
        "Constance",
        "Hazel",
        "Verity",
        "Willow",
        "Merit",
        "Marvel",
        "Wisdom",
        "Goodness",
        "Glen",
        "Miles",
        "Lance",
        "Cliff",
        "Clement",
        "Gift",
    ),
    common_word_last=(
        "Burns",
        "Hand",
        "Head",
        "Bone",
        "Temple",
        "Cannon",
        "Ward",
        "Cutter",
        "Rust",
        "Gall",
        "Fisher",
        "Swan",
        "Bean",
        "Rice",
        "Hurt",
        "Sickles",
        "Friday",
        "Weary",
    ),
    public_figures=(
        "Billie Jean King",
        "Kareem Abdul-Jabbar",
        "Bruce Springsteen",
        "Shania Twain",
        "Senator Chuck Grassley",
        "Senator Bill Cassidy",
        "Governor Wes Moore",
        "Governor Josh Shapiro",
        "Senator Tammy Duckworth",
        "Mayor Karen Bass",
        "Representative Jim Clyburn",
        "Senator Raphael Warnock",
        "Celine Dion",
        "Elton John",
        "Venus Williams",
        "Prince Harry",
    ),
    companies=(
        "Halvorsen Orthotics",
        "Brandt & Kowalczyk Dental Supply",
        "Okoye Mobility",
        "Lindgren Hearing Systems",
        "Mbeki Medical Couriers",
        "Sørensen Oxygen",
        "Tanaka-Reyes Imaging",
        "Abernathy Pharma",
        "Dumont & Fils Optical",
        "Gallagher Sterile Services",
        "Petrovic Biomedical",
        "Whitcombe Home Medical",
    ),
    streets=(
        "Mary Seacole Way",
        "Virginia Apgar Lane",
        "Elizabeth Blackwell Street",
        "Daniel Hale Williams Drive",
        "Florence Sabin Parkway",
        "Rebecca Lee Crumpler Avenue",
        "Paavo Nurmi Street",
        "Ignaz Semmelweis Road",
        "Helen Taussig Court",
    ),
    buildings=(
        "Elisabeth Kübler-Ross House",
        "Rosalind Franklin Pavilion",
        "Aaltonen Hall",
        "Moser Building",
        "Okafor Centre",
        "Helmi Korhonen Wing",
        "Juhani Lind Tower",
        "Beatrice Mokoena House",
    ),
    funds=(
        "Inga Sorensen Hospice Fund",
        "Bertil Ahlgren Memorial Trust",
        "Nomsa Zulu Nursing Bursary",
        "Pekka Halonen Kidney Fund",
        "Edith Marlowe Endowment",
        "Ruth Okonjo Hearing Fund",
        "Arturs Liepa Scholarship Fund",
    ),
    name_locales=NAME_LOCALES,
    name_locale_share=NAME_LOCALE_SHARE,
)
