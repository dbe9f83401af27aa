"""Blind phrasings of the round-two corpus families (bench/corpus.py): the final judge.

DO NOT READ THIS FILE WHEN TUNING A DETECTOR, and never run the blind split while
tuning one, not even in aggregate (`bench/corpus.py --split blind` writes it). The
detector has been tuned while looking at the tune, held-out and fresh splits; this
split was written without looking at the detector, its word lists, its scores or the
other books' sentences, so its figures mean something only while nobody tunes
against it. Run it once, on a finished detector, and report what it says.

The sentences are mail as it arrives from many senders: patient portals, chain and
mail-order pharmacies, schedulers, labs, billing offices, payers, home-health
agencies, nursing homes, school nurses, therapists, dentists, behavioural health,
interpreters, case managers, relatives writing about a family member, doctors'
notes, discharge summaries, referral letters, faxes turned into mail, text messages,
forwarded threads and quoted replies, with signatures, disclaimers, non-native
English and some Spanish and French. The negatives have the same shapes (names next
to health words, dates and times) and name no patient: rotas, credentialing, grand
rounds, research news, donors, staff obituaries, public figures, places and
companies named after people, HR, IT and vendor mail.

Names: a share of the patients', staff's and clinicians' names (NAME_LOCALE_SHARE,
40%) come from other Latin-script Faker locales that US patients and staff come from
(NAME_LOCALES, weighted roughly by how often they are met; the Phrasebook fields
name_locales and name_locale_share), with their accents kept; the rest are Faker
en_US as in every split. Faker's tl_PH and fil_PH give en_US names, its hi_IN names
are Devanagari and its tw_GH names spell Twi's open e with a Greek letter, so
Filipino and Ghanaian names are not drawn and South Asian ones come from en_IN.

No sentence here is a word swap of another book's: tests/test_corpus.py checks that
no template is shared, that templates differ in their words, and that no name pool
entry is shared.
"""

from __future__ import annotations

from corpus import Phrasebook

# (Faker locale, weight): Latin-script names of people US clinics see.
NAME_LOCALES: tuple[tuple[str, float], ...] = (
    ("es_MX", 8),
    ("es_CO", 1.5),
    ("es_ES", 1),
    ("es_CL", 0.5),
    ("vi_VN", 3),
    ("en_IN", 3),
    ("pt_BR", 1.5),
    ("pt_PT", 0.5),
    ("fr_FR", 0.7),
    ("fr_CA", 0.7),
    ("it_IT", 1),
    ("pl_PL", 1),
    ("de_DE", 1),
    ("ro_RO", 0.5),
    ("tr_TR", 0.3),
    ("en_GB", 1),
    ("en_IE", 0.8),
    ("ga_IE", 0.4),
    ("yo_NG", 1),
    ("ig_NG", 0.7),
    ("ha_NG", 0.3),
    ("en_NG", 0.5),
)
NAME_LOCALE_SHARE = 0.4

BLIND_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "{org} Patient Portal\n\nHello {patient},\nYou have an upcoming appointment.\n"
            "Provider: {provider}\nDate: {date}\nArrival time: {time}\nReason for visit: "
            "{procedure}\n\nTo cancel, log in at least 24 hours ahead.",
            "APPT REMINDER: {patient} is scheduled {date} @ {time} w/ {doctor} ({specialty}). "
            "Reply 1 to confirm, 2 to cancel.",
            "Dear parent or guardian,\nthis is to remind you that {patient} has a dental "
            "cleaning and {procedure} at {org} on {date} at {time}.\nPlease bring the "
            "child's Medicaid card.",
            "Hi! It's {staff_first} from {org} PT. Just confirming {first}'s session with "
            "{doctor} on {weekday} at {time}, wear comfy shoes :)",
            "Estimado(a) {patient}:\nSu {procedure} con {doctor} queda programada para el "
            "{date}, {time}.\nSi necesita cambiarla, marque al {phone}.",
            "> Can we move the visit? I have work that day.\n\nOf course. {patient} is now "
            "booked with {doctor} on {date} at {time} instead. The {procedure} prep "
            "instructions stay the same.\n\n{staff}\nScheduling, {org}",
            "Interpreter request confirmed\nLanguage: Spanish\nPatient: {patient}\n"
            "Appointment: {date} {time}, {specialty}, {doctor}\nPlease check in at the "
            "main desk 15 minutes early.",
            "Bonjour {first},\nnous vous rappelons votre rendez-vous avec {doctor} le "
            "{date} a {time} pour votre {procedure}.\nCordialement, {org}",
            "Home health visit tomorrow: our nurse {staff_first} will come to see "
            "{patient} between {time} and noon for the wound check after the "
            "{procedure}.",
            "{org}: the video room for {patient}'s telehealth visit with {doctor} on {date} "
            "at {time} will arrive 10 min before start. Test your camera first.",
            "Good evening,\n{patient} still needs to complete pre-registration for the "
            "{procedure} on {date}. Without it, the {time} slot may be released.\n"
            "Patient Access Team",
            "Behavioral Health reminder: {first}, your counseling session with {provider} "
            "is {weekday} {date} at {time}. Call {phone} if you need to reschedule.",
        ),
        "refill_reminder": (
            "{pharmacy} alert - {patient}'s {drug} {dose} is in the pickup bin until "
            "{date}, then it is returned to the shelf.",
            "Good news - the mail-order box has left our warehouse!\nMember: {patient}\n"
            "Medication: {drug} {dose}, 90-day supply\nPrescriber: {doctor}\n"
            "Track your package in the app.",
            "Auto-refill notice for {patient}: we could not process {drug} because the "
            "prescription from {doctor} has expired. We have faxed the office for a "
            "renewal.",
            "Hello, I write for my relative {patient}, the {drug} is finish and the "
            "pharmacy say they need new authorization from {doctor}. Please help, it "
            "cannot be stopped.",
            "RX RENEWAL QUEUE\n{patient} asked for {drug} {dose} to go to "
            "{pharmacy}. Last office visit was {date}. Route to {doctor} for approval?",
            "{first}, your prior authorization for {drug} was approved by your health plan. "
            "{pharmacy} can fill it now.",
            "Your copay for {drug} dropped to {amount} this month, {patient}. Refills "
            "remaining: 2. Questions? Call {phone}.",
            "Nursing facility pharmacy order\nResident: {patient}, Room {room}\n"
            "Continue {drug} {dose} nightly per {doctor}.\nCycle fill date: {date}",
            "Recordatorio: {first}, su medicamento {drug} esta listo en {pharmacy}. Horario "
            "de 9 a 9.",
            "School nurse here. {patient} has only two doses of {drug} left in the health "
            "office; please send a new supply and an updated form signed by {doctor}.",
            "Denied: {pharmacy} requested a refill of {drug} for {patient}; {doctor} wants "
            "a visit first because the {test} is overdue.",
        ),
        "result_notice": (
            "A new test result is available for {patient}.\nTest: {test}\nCollected: "
            "{date}\nOpen the app to see the value and {doctor}'s comment, if any.",
            "Good news, {first} - your {test} came back at {value}, which is in the normal "
            "range. {doctor} says no changes for now.",
            "Crit lab phoned to {doctor} {time} - {patient} {test} = {value}, RN repeated "
            "the result back.",
            "Pathology from the {procedure} on {date} for {patient} shows {diagnosis}. "
            "{doctor} will discuss options at the next visit.",
            "Imaging report ready\n{patient} - {procedure}\nImpression: findings consistent "
            "with {diagnosis}. Compared with prior study of {date}.",
            "Hi {first}, I looked at your labs. The {test} is a little off ({value}); "
            "let's repeat it in 6 weeks. - {doctor}",
            "> Did my results come in?\nYes, {patient}, the {test} from {date} is back. "
            "Please call {phone} so a nurse can go over it with you.",
            "Resultado disponible: {patient}, su prueba de {test} ya esta en el portal. Su "
            "medico, {doctor}, la revisara.",
            "Lab courier note: specimen for {patient} ({test}) was hemolyzed and must be "
            "redrawn. Order by {doctor}, collected {date} {time}.",
            "Your sleep study results, {patient}: the study supports a diagnosis of "
            "{diagnosis}. {doctor} recommends starting therapy.",
            "{doctor}'s office: {patient}, your {test} needs a follow-up visit. Call "
            "{phone}.\n\nCONFIDENTIALITY NOTICE: this e-mail may contain protected health "
            "information and is meant only for the person named above. If you got it by mistake, "
            "delete it and tell the sender.",
            "FYI {doctor} - {patient}'s {test} trended from 9.1 to {value} since "
            "{date}. Flagged for your review.",
        ),
        "care_handoff": (
            "I-PASS\nI - watcher\nP - {patient}, bed {room}, {diagnosis}, s/p {procedure}\n"
            "A - recheck {test} at {time}\nS - {drug} running\nS - night RN agrees",
            "{colleague} - passing {patient} to you for the weekend. Stable, but recheck "
            "the {test} in the morning; we started {drug} {dose} tonight.",
            "Case management update: {patient} is ready for discharge to skilled nursing "
            "after the {procedure}. Accepting facility contacted; {doctor} signed the "
            "orders.",
            "Referral letter\n\nDear {colleague},\nthank you for seeing {patient}, whom I "
            "follow for {diagnosis}. Current medication: {drug} {dose}.\nKind regards,\n"
            "{provider}",
            "Nursing home to ED transfer: resident {patient}, found with new confusion at "
            "{time}; history of {diagnosis}. Code status on file. Family notified.",
            "From the school nurse: {first} was sent home today after a {diagnosis} "
            "episode in gym class. Parent picked up at {time}. Please follow up with "
            "{doctor}.",
            "Discharge summary\nName: {patient}\nAdmitted: {date}\nPrincipal diagnosis: "
            "{diagnosis}\nProcedures: {procedure}\nDischarge meds: {drug} {dose}\n"
            "Follow-up: {doctor}, {specialty}",
            "OT note for the home-health team: {patient} can transfer with standby "
            "assist since the {procedure}. Please continue the home exercise plan.",
            "Hand-off from night float to {colleague}:\n> bed {room} {patient} pending "
            "{test}\n> holding {drug} until it results",
            "Can someone from {specialty} see {patient} today? Consult for {diagnosis}; "
            "primary is {doctor}. Thanks - {staff_first}, charge RN",
            "Care coordinator here. {patient}'s daughter asked that the hospice team meet "
            "with {doctor} about the {diagnosis} plan before {date}.",
        ),
        "billing_question": (
            "Statement for {patient}\nDate of service: {date}\nService: {procedure}\n"
            "Provider: {provider}\nBalance due: {amount}",
            "Explanation of Benefits\nMember: {patient}\nClaim for {procedure} on {date} "
            "with {doctor}: processed. You may owe the provider {amount}.",
            "This is {patient} writing. A {amount} invoice showed up for my {test}; my plan "
            "says it was paid in full. Reach me on {phone}.",
            "Self-pay estimate for {patient}: {procedure} with {doctor}, estimated "
            "{amount}. Financial assistance forms are attached.",
            "Collections hold placed on {patient}'s account ({amount}, DOS {date}) "
            "pending a payer appeal for the {diagnosis} visit.",
            "Hola, soy la hija de {patient}. Recibimos una factura de {amount} por la "
            "{procedure} del {date}. Necesitamos un plan de pagos por favor.",
            "Denial reason: the {procedure} for {patient} lacks a prior authorization "
            "from {doctor}'s office. Please resubmit with records.",
            "{first}, we refunded {amount} for the duplicate charge on your dental "
            "visit of {date}. Allow 5-7 business days.",
            "Coding query for {doctor}: the chart for {patient} lists {diagnosis} but the "
            "claim shows a routine visit. Please clarify before we bill.",
            "Re: double charge\n> Why did I get charged twice?\n{patient}, the second "
            "line is the {test} from {date}, billed by the outside lab, not by {org}.",
            "Payment received, thank you. {patient}, your payment of {amount} for the "
            "{specialty} visit on {date} has been applied.",
        ),
        "clinical_note": (
            "SUBJECTIVE: {patient} presents for follow-up of {diagnosis}. Reports "
            "adherence to {drug}.\nOBJECTIVE: {test} {value}.\nA/P: continue current plan.",
            "Telephone encounter {date} {time}: {patient} called with worsening "
            "symptoms. Hx {diagnosis}. Advised ED if chest pain. Routed to {doctor}.",
            "Progress note, physical therapy\n{patient} tolerated 40 minutes of "
            "therapeutic exercise after the {procedure}. Goals: stairs without rail.",
            "Dental note: {patient} seen for {procedure}. Medical history reviewed, "
            "taking {drug}; premedication per {doctor}.",
            "Therapy session note (confidential)\nClient: {patient}\nDx: {diagnosis}\n"
            "Session focused on coping skills; next session {date}.",
            "Pt {patient} seen in clinic today. {diagnosis} - improving. {drug} {dose} "
            "daily. RTC 3 months with {test}.",
            "Addendum by {doctor}: after speaking with {patient}'s spouse, the history of "
            "{diagnosis} dates back to childhood.",
            "Home visit: {first} was sitting up in bed, pleasant. Took morning {drug}. "
            "Daughter says appetite poor since the {procedure}.",
            "Interpreter-assisted visit (Vietnamese). {patient} understands the plan for "
            "{procedure} on {date} and gives consent.",
            "I saw {patient} in the ward this morning. The {diagnosis} has responded to "
            "{drug}; plan to step down to oral tomorrow.",
            "Consult note\nReason for consult: {diagnosis}\nRequesting: {doctor}\n"
            "Patient: {patient}\nRecommend {test} and start {drug} {dose}.",
        ),
        "name_line_start": (
            "{patient}, hold {drug} for 48 hours ahead of the {procedure}, per anesthesia.",
            "{patient} -- {test} {value} (H), {doctor} wants it redrawn in 7 days",
            "{patient}: admitted overnight with {diagnosis}, now on the {specialty} service.",
            "{patient} (DOB {dob}) needs a {test} before the visit with {doctor}.",
            "{first}: your {procedure} went well; {doctor} will phone tomorrow.",
            "{patient}; cancelled {procedure} {date}, wants a later slot",
            "{patient} called re: rash after starting {drug}. Advised to stop and see {doctor}.",
            "{patient} / {diagnosis} / {doctor} / next visit {date}",
            "{first} - don't forget fasting labs for the {test} Thursday!",
            "{patient} asked whether the {procedure} is covered by Medicare.",
        ),
        "name_inline": (
            "This is to certify that {patient} was under my care for {diagnosis} and may "
            "return to work on {date}.\n{provider}",
            "Yesterday my grandchild {patient} had the {procedure} and they gave {drug}, "
            "is it normal to sleep so much after?",
            "The surgeon told us that {patient} will need a {procedure} in the spring.",
            "Per {doctor}, please add {patient} to the waitlist for {specialty}.",
            "Our records show that {patient} received {drug} {dose} at {time} today.",
            "Just wanted to let you know that {patient} tested positive for {diagnosis} "
            "and is staying home this week.",
            "We have asked {patient} to bring the {test} results from the outside lab "
            "to the {date} visit.",
            "After reviewing the images, I think {patient} should see {colleague} about "
            "the {diagnosis}.",
            "As discussed, {patient}'s {procedure} was moved to {date} because of the "
            "{test} result.",
            "My partner {patient} is diabetic and takes {drug}, can we still get the "
            "{procedure} done?",
            "Ms. Ortega from the county asked if {patient} kept the {specialty} "
            "appointment on {date}.",
            "The interpreter told us {patient} did not understand the {drug} dosing, so "
            "we reviewed it again.",
        ),
        "name_greeting": (
            "{patient},\nThank you for choosing {org}. Your {procedure} with {doctor} is "
            "set for {date}.",
            "Hey {first}! Your {drug} is ready at the counter. See you soon.",
            "Morning {first},\njust a note that the {test} looked fine. {doctor}",
            "Hi again {patient},\nwe tried calling about your {procedure} but could not "
            "reach you. Please call {phone}.",
            "Hello {patient} -\nYour claim for the {specialty} visit on {date} was processed.",
            "Hola {first}:\nsu resultado de {test} esta listo. {doctor} le llamara.",
            "{first} -\nfollowing up on your {diagnosis} questions from {date}; see "
            "the handout attached.",
            "Greetings {patient},\nthe {org} care team welcomes you. Your first visit "
            "with {provider} is {date} at {time}.",
            "Welcome back {first}!\nYour physical therapy plan after the {procedure} "
            "starts {weekday}.",
            "Salut {first},\nvotre ordonnance pour {drug} a ete envoyee a {pharmacy}.",
            "Hello {patient}! NPO after 12 a.m. the night before your {procedure}; water is "
            "fine until 6.",
        ),
        "name_list": (
            "Huddle list {date}:\n{items}\nFlag anyone needing an interpreter.",
            "Missed appts Mon-Wed\n{items}\nPlease send letters.",
            "Prior auths still pending with the payer:\n{items}",
            "Home visits for {staff_first} tomorrow:\n{items}\nCall ahead, some have dogs.",
            "> which residents need med pass changes?\n{items}\n> thanks",
            "Surgery board, {weekday}:\n{items}\nAnesthesia pre-op calls done.",
            "Kids on the school nurse medication log:\n{items}",
            "Dental hygiene recall list\n{items}\nOffer Saturday slots first.",
            "Patients {doctor} asked us to phone today:\n{items}\n- {staff}",
            "Lista de pacientes para el interprete:\n{items}",
        ),
        "name_table": (
            "Clinic schedule, {doctor}, {date}\n{table}",
            "Chairs, infusion center, AM block\n{table}\nCall pharmacy if a dose is not up by "
            "{time}.",
            "{table}\nSent from the scanner, 2 pages.",
            "Weekly outstanding results export\n{table}\nConfidential.",
            "As requested, this month's denials:\n{table}",
            "Rehab census for {weekday}\n{table}\nTherapists, update goals by Friday.",
            "Faxed over by {org}\n{table}",
            "Case load for {staff}:\n{table}\nEscalate anything past 30 days.",
            "{table}",
            "Medication pass sheet, hall B\n{table}",
        ),
        "name_shape": (
            "{patient}\n{diagnosis}; on {drug} {dose}",
            "Re: {patient} - {procedure} scheduled {date}",
            "Pt: {patient}   Test: {test}   Result: {value}",
            "{patient} has the {procedure} with {doctor} on {date}.",
            "Pre-visit planning - {patient} - PMH {diagnosis} - prior encounter {date}.",
            "Please confirm insurance for {patient} before the {procedure}.",
            "Sent {patient}'s records to {doctor} at {org} for the {specialty} referral.",
            "Can you fax the {test} results for {patient}?",
            "{patient} (age 67) - {diagnosis}, stable, f/u {date}",
            "Interpreter needed for {patient} at {time} ({procedure}).",
            "Resident {patient} refused {drug} again this morning.",
            "Patient name: {patient}\nReason: {diagnosis}\nProvider: {doctor}",
        ),
        "neg_staff": (
            "Call schedule for {weekday}\nDay: {doctor}\nNight: {colleague}\nBackup: "
            "{provider}\nPaging operator: {phone}",
            "Hi team,\n{staff} will be out {date} through the end of the month. "
            "{doctor} covers the {specialty} inbox.\nThanks!",
            "Congratulations to {staff} on passing the wound care certification exam!",
            "Credentialing: {provider} was approved for {procedure} privileges by the "
            "medical staff committee on {date}.",
            "Nurse staffing 7a-7p: {staff} (charge), {staff_first} float, two travelers. "
            "{doctor} attending on 5 East.",
            "> Is anyone free to cover?\n{colleague} can take the {time} clinic; "
            "{doctor} will do the {procedure} cases.",
            "Please welcome our new medical assistant {staff}, who starts {weekday} in "
            "the {specialty} clinic.",
            "Reminder: flu shots for employees on {date} from {time} in room {room}. "
            "Bring your badge. - {staff_first}, Employee Health",
            "Shift swap approved: {staff} and {staff_first} trade the {date} night "
            "shift. Manager: {doctor}",
            "The {specialty} residents will present morbidity and mortality cases with "
            "{doctor} on {date} at {time}. Cases are de-identified.",
            "Peer review committee meets {weekday}; {colleague} chairs. Agenda: "
            "{diagnosis} protocol revision.",
            "Thank you to {staff} for organizing the potluck! Leftovers in the break room "
            "by room {room}.",
        ),
        "neg_provider": (
            "Provider directory\n{provider}\nSpecialty: {specialty}\nOpen panel: "
            "Y\nLanguages: English, Spanish\nOffice: {org}, {phone}",
            "{doctor} is now offering {procedure} at the {building} location starting {date}.",
            'Grand rounds: "{diagnosis}: what\'s new in 2026" presented by {provider}, '
            "{date}, {time}, {building} auditorium. 1 CME credit.",
            "--\n{provider}\nAttending Physician, {specialty}\n{org}\nPh {phone}",
            "Locum tenens opportunity: {specialty} coverage needed {date}; contact "
            "{staff} in medical staff services.",
            "Our referral coordinator can route consults for {diagnosis} to {doctor} or "
            "{colleague}. Referral fax line: {phone}.",
            "{provider} has joined the board of the state society for {specialty}.",
            "On-call roster, {specialty}\n{weekday}: {doctor}\nBackup: {colleague}\n"
            "Escalation: department chair",
            "Please update your EHR favorites: {doctor}'s new NPI and fax number are "
            "listed in the attached directory.",
            "Interpreter services roster: {staff} covers Spanish and Portuguese this week; "
            "call {phone} to book a Vietnamese interpreter.",
            "Correction: the speaker for the Alzheimer disease session is {provider}, not "
            "{colleague} as printed.",
        ),
        "neg_public": (
            "{public}'s story is part of our museum exhibit on the history of {diagnosis} care.",
            "This week in the hospital book club: a new biography of {public}. "
            "Discussion {weekday} at {time} in the library.",
            "Historians say {public} hid an illness from the public for years; our "
            "medical history lecture on {date} looks at the records.",
            "Trivia answer: {public} was the first person to appear on the poster in the lobby.",
            "Lou Gehrig's disease (ALS) awareness walk on {date}. Register with {staff}.",
            "The foundation's fact sheet explains how {public} raised money for "
            "{diagnosis} research.",
            "Movie night: a documentary about {public}, {weekday} at {time}, {building}.",
            "A quote from {public} is painted over the entrance to the {specialty} clinic.",
            "Costume contest winners: {staff} dressed as {public}!",
            "Did you know? The {procedure} was first described in a letter to "
            "{public}. Read more in the newsletter.",
            "A new biography reviewed in this issue says {public} lived with {diagnosis} "
            "for decades without telling the press.",
        ),
        "neg_place": (
            "Heads up: the {street} lot gets resurfaced {date}; park in the {building} deck.",
            "The {specialty} clinic has moved to the 3rd floor of the {building}.",
            "Thanks to the {fund}, the {procedure} suite received a new scanner this year.",
            "Shuttle stops: {street}, the {building}, and the main entrance.",
            "Applications for the {fund} nursing scholarship close {date}.",
            "Fire drill in the {building} on {weekday} at {time}. Wards stay open.",
            "Our new address: {org}, 400 {street}. Phone {phone} stays the same.",
            "The {fund} pays for taxi rides to {diagnosis} treatment for anyone in the "
            "county who needs one.",
            "Water shut-off in the {building}, rooms {room}-220, {date} from {time}.",
            "The {street} pharmacy drive-thru is open late on {weekday}.",
        ),
        "neg_company": (
            "Sales rep from {company} would like 15 minutes at the {specialty} staff "
            "meeting on {date} to present data on {drug}.",
            "Recall notice: {company} is recalling lot 44B of infusion sets. Check "
            "your supply room by {date}.",
            "{company} will cater lunch on {weekday}; please sign the Sunshine Act form.",
            "Contract update: {company} remains our preferred vendor for {procedure} "
            "kits through 2027.",
            "Webinar: {company} presents new results on {drug} in {diagnosis}, {date} "
            "at {time}. Not CME accredited.",
            "Invoice 5521-{room} from {company} for the {procedure} trays is past due; please "
            "approve {amount}.",
            "Reminder that gifts from {company} above $10 must be reported to compliance.",
            "Device alert from {company}: firmware update for pumps in the {building}.",
            "{company} has a patient assistance program for {drug}; forms are at the front desk.",
            "Shipment from {company} arrived damaged; {staff} filed the claim.",
        ),
        "neg_hr_it": (
            "Reminder from Compliance: all outgoing mail must keep the footer below.\n\n"
            "CONFIDENTIALITY NOTICE: this e-mail may contain protected health information "
            "and is meant only for the person named above. If you got it by mistake, "
            "delete it and tell the sender.\n{staff}, Privacy Office",
            "IT: {staff}'s EHR access was reset. New password sent by text.",
            "Open enrollment closes {date}. Questions go to {staff} in Benefits, ext. 4471.",
            "Badge for {staff} is ready at Security; bring photo ID.",
            "Job posting: Registered Nurse, {specialty}, nights. Hiring manager "
            "{staff}. Apply by {date}.",
            "The printer in room {room} is out of toner again. Ticket opened by {staff_first}.",
            "Performance reviews are due {date}. {doctor}, please complete the ones for "
            "your medical assistants.",
            "Facilities: the elevator in the {building} will be serviced {weekday} at "
            "{time}. Use the stairs or the east lift.",
            "Exit interview scheduled with {staff} on {date}, {time}, HR conference room.",
            "Phishing alert: do not open mail claiming to be from {provider} asking for "
            "gift cards.",
            "Mandatory HIPAA training must be done by {date}. {staff} has the list of "
            "who is overdue.",
            "New hire orientation {weekday}: {staff}, {staff_first} and two others start "
            "in {specialty}.",
        ),
        "neg_newsletter": (
            "Research spotlight: {provider} received an NIH grant to study {drug} in "
            "{diagnosis}. Enrollment opens {date}.",
            "In memoriam: {staff}, a unit clerk on 6 West for 22 years, passed away on "
            "{date}. Services on {weekday} at {time}.",
            "Gala recap: thank you to the {fund} for its matching gift and to everyone at "
            "the {public} tribute dinner. We raised {amount} for the {specialty} program.",
            "Donor thank-you: a gift from the family of {staff} funds a new {procedure} room.",
            "CME: {diagnosis} update with {doctor} and {colleague}, {date}, {time}. "
            "Register online.",
            "Conference program, day 2\n{time} Keynote: {provider}\nAfter lunch: panel on "
            "{diagnosis}, moderated by {doctor}",
            "New publication: {doctor} et al. report outcomes of {procedure} in 300 "
            "adults with {diagnosis}.",
            "Nurse of the month: {staff}, {specialty}, nominated by {staff_first} for "
            "staying calm through a busy season.",
            "Clinical trial recruiting: adults with {diagnosis} may qualify. Principal "
            "investigator: {provider}. Call {phone}.",
            "Thanks, {staff}, for a decade of Tuesdays at the information desk.",
            "Employee wellness: {doctor} gives a talk on sleep and {test} numbers, "
            "{weekday} at {time}.",
        ),
    },
    subjects={
        "appt_reminder": (
            "Upcoming appointment at {org}",
            "Recordatorio de cita",
            "Appt {date} {time}",
            "Please confirm: {patient}",
            "Video visit details",
        ),
        "refill_reminder": (
            "Rx ready for pickup",
            "Your order has shipped",
            "Renewal for {patient}?",
            "Action needed on your prescription",
        ),
        "result_notice": (
            "New test result",
            "CRITICAL - {patient}",
            "Your {test}",
            "Pathology report",
        ),
        "care_handoff": (
            "I-PASS {date}",
            "Discharge summary: {patient}",
            "Referral - {patient}",
            "Weekend coverage",
        ),
        "billing_question": (
            "Your statement is ready",
            "EOB available",
            "Factura",
            "Account {patient}",
        ),
        "clinical_note": (
            "Encounter note",
            "Telephone encounter",
            "Addendum - {patient}",
            "PT daily note",
        ),
        "name_greeting": ("Hello from {org}", "Following up", "A note from your care team"),
        "name_list": ("Huddle", "Lists for tomorrow", "Call list"),
        "name_table": ("Schedule", "Export", "Scanned document", "Census"),
        "neg_staff": ("Coverage", "Call schedule", "Welcome!", "Shift swap"),
        "neg_provider": ("Grand rounds", "Directory update", "On-call roster"),
        "neg_public": ("Book club", "Movie night", "Museum exhibit"),
        "neg_place": ("Parking", "We have moved", "Fire drill"),
        "neg_company": ("Vendor visit", "Recall notice", "Webinar invitation"),
        "neg_hr_it": ("Open enrollment", "Password reset", "Job posting"),
        "neg_newsletter": ("Monthly newsletter", "In memoriam", "Research news"),
        "default": ("(no subject)", "Fwd:", "RE: your message", "Info", "Urgent"),
    },
    covers=(
        "Fax received {weekday} {time}, converted to PDF. 3 pages.",
        "See attached and let me know if anything is missing.",
        "Attached are the records for {patient} that {doctor} asked for.",
        "Enclosed is the paperwork for {patient}, signed by {doctor}.",
        "Scanned at the front desk, please file.",
        "Here is the file. - {staff_first}",
    ),
    list_items=(
        "{patient} - {procedure} w/ {doctor} at {time}",
        "{patient} (DOB {dob}): {test} {value}",
        "{patient} - {drug} refill at {pharmacy}",
        "{time}  {patient}  new pt, {diagnosis}",
        "{patient}: no-show {date}, {procedure}",
        "{patient}, {diagnosis}, needs auth for {procedure}",
        "Room {room} {patient} - {drug} {dose}",
    ),
    table_layouts=(
        (("Pt Name", "patient"), ("Appt", "time"), ("Visit type", "procedure"), ("With", "doctor")),
        (("Member", "patient"), ("DOS", "date"), ("Billed", "amount"), ("Service", "procedure")),
        (("Resident", "patient"), ("Room", "room"), ("Med", "drug"), ("Dose", "dose")),
        (("Student", "patient"), ("Medication", "drug"), ("Given at", "time")),
        (("Client", "patient"), ("Dx", "diagnosis"), ("Therapist", "doctor"), ("Next", "date")),
        (("Patient name", "patient"), ("DOB", "dob"), ("Test", "test"), ("Value", "value")),
    ),
    compound_surnames=(
        "Martínez Soto",
        "dos Santos",
        "Ben-David",
        "Al-Hassan",
        "van den Heuvel",
        "Le Roux",
        "De Leon",
        "Mendoza-Reyes",
        "Saint-Pierre",
        "Nguyen-Tran",
        "Mac Giolla Phádraig",
        "Pérez de Arce",
        "Ní Bhriain",
    ),
    apostrophe_surnames=(
        "O'Dwyer",
        "D'Mello",
        "N'Guessan",
        "O’Rourke",
        "D’Costa",
        "Dall'Ara",
        "O'Keeffe",
        "O'Shaughnessy",
        "O'Callaghan",
        "O'Donoghue",
    ),
    common_word_first=(
        "Blessing",
        "Mercy",
        "Honor",
        "Sage",
        "June",
        "Ruby",
        "Holly",
        "Sunny",
        "Chase",
        "Major",
        "Justice",
        "Precious",
    ),
    common_word_last=(
        "Bishop",
        "Crane",
        "Marsh",
        "Snow",
        "Fox",
        "Banks",
        "Sweet",
        "Hart",
        "Nurse",
        "Wolf",
        "Payne",
        "Lamb",
    ),
    public_figures=(
        "Ludwig van Beethoven",
        "Franklin D. Roosevelt",
        "Clara Barton",
        "Florence Nightingale",
        "Jonas Salk",
        "Frida Kahlo",
        "Babe Ruth",
        "Louis Pasteur",
        "Eleanor Roosevelt",
        "Harriet Tubman",
        "Roberto Clemente",
        "Mary Seacole",
    ),
    companies=(
        "Bausch + Lomb",
        "Hill-Rom",
        "Fresenius Kabi",
        "Mead Johnson",
        "Dr. Reddy's Laboratories",
        "Merck Sharp & Dohme",
        "Siemens Healthineers",
        "Karl Storz",
        "Hollister Incorporated",
        "Boehringer Ingelheim",
        "Edwards Lifesciences",
        "Hoffmann-La Roche",
    ),
    streets=(
        "Cesar Chavez Avenue",
        "Dolores Huerta Avenue",
        "Frederick Douglass Way",
        "Ida B. Wells Drive",
        "Thurgood Marshall Road",
        "Juan Pablo Duarte Street",
        "Sojourner Truth Lane",
        "Walt Whitman Road",
    ),
    buildings=(
        "Delgado Rehabilitation Pavilion",
        "Okafor Women's Health Wing",
        "Harriet Lane Outpatient Center",
        "Chen Family Cancer Building",
        "Margaret Doyle Tower",
        "Lindqvist Research Annex",
    ),
    funds=(
        "Teresa Almeida Patient Assistance Fund",
        "Joseph Kowalski Memorial Fund",
        "Nguyen Family Endowment",
        "Anita Desai Nursing Scholarship Fund",
        "Walter and Ruth Bauer Fund",
    ),
    name_locales=NAME_LOCALES,
    name_locale_share=NAME_LOCALE_SHARE,
)
