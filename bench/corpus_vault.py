"""Vault phrasings of the round-two corpus families (bench/corpus.py): the next judge.

DO NOT READ THIS FILE WHEN TUNING A DETECTOR, and do not generate the vault split
(`bench/corpus.py --split vault`) or score it (`bench/phi_accuracy.py --split vault`)
while a detector is being worked on, not even for aggregate counts. Run it once, on a
finished detector, and report the figures as they come; a run that leads to more
detector changes uses the split up.

It holds VAULT_BOOK: for every round-two family, mail as a hospital's relay sees it
from departments and services the other books barely touch: radiology scheduling,
physical, occupational and speech therapy, behavioural health intake, pediatric and
school forms, dental and optometry offices, hospice, sleep labs, audiology, pharmacy
prior authorisation and specialty pharmacy, lab courier manifests, EHR-generated tasks
and alerts, fax-to-email cover sheets, voicemail transcriptions, interpreter requests,
case management and durable medical equipment. PHI families name a patient with a
health fact, visit, test, prescription or result about them, in every position: first
on a line before ":", "," or "-", inside a sentence, after greetings with and without
"Dear", in lists, manifests and tables, as "Last, First M.", in capitals, with
hyphenated, multi-part and apostrophe surnames, names that are common words,
possessives, in parentheses, after "re:", "pt", "for" and "about". The negative
families have the same shapes with no patient in them: grand rounds, CME, board
minutes, staff obituaries and awards, conference travel, on-call rotas and signature
blocks, public health officials and public figures with health topics, galas,
buildings, streets and funds named for donors, vendors that look like people's names
(a veterinary supplier among them), research recruitment, HR, IT and facilities mail,
and newsletters.

It has its own name pools, and draws 50% of its patients', staff's and clinicians'
names from Latin-script Faker locales other than en_US, weighted towards Slavic,
Germanic, Nordic, Portuguese, Maghrebi and Pakistani names (a mix unlike the other
books'). It was written apart from the detector and its word lists and without reading
the other books' sentences; tests/test_corpus.py checks that no template is shared with
another book or a word swap of one, and that no name pool entry is shared.
"""

from __future__ import annotations

from corpus import Phrasebook

# (Faker locale, weight). Each gives Latin-script names of its own (checked by
# tests/test_corpus.py). Faker's ar_* and el_* locales give en_US names, so Arabic names
# in Latin script come from fr_DZ and en_PK, and Greek and Filipino surnames only from
# the compound and apostrophe pools below. az_AZ is left out: some of its given names
# end in a space, which a name at the end of a line would lose.
NAME_LOCALES: tuple[tuple[str, float], ...] = (
    ("pl_PL", 0.10),
    ("cs_CZ", 0.06),
    ("sk_SK", 0.04),
    ("hr_HR", 0.06),
    ("sl_SI", 0.03),
    ("de_DE", 0.06),
    ("de_AT", 0.04),
    ("de_CH", 0.03),
    ("nl_BE", 0.04),
    ("no_NO", 0.05),
    ("sv_SE", 0.03),
    ("da_DK", 0.03),
    ("fi_FI", 0.04),
    ("is_IS", 0.02),
    ("pt_PT", 0.07),
    ("fr_DZ", 0.07),
    ("en_PK", 0.05),
    ("id_ID", 0.04),
    ("et_EE", 0.02),
    ("lv_LV", 0.02),
    ("zu_ZA", 0.03),
    ("en_KE", 0.03),
    ("en_TH", 0.02),
    ("ga_IE", 0.02),
)
NAME_LOCALE_SHARE = 0.5

VAULT_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "Imaging scheduling, {org}\n"
            "Exam booked: {procedure}\n"
            "Patient: {patient}   DOB: {dob}\n"
            "Arrive {time} on {date}; if contrast was ordered, nothing to eat four hours before.\n"
            "To move it, ring {phone} and press 2.",
            "Hello {first}! Twelve PT sessions with {provider} kick off {weekday} {date} at "
            "{time}.\n"
            "Wear loose shorts and bring the home exercise sheet the orthopaedic office gave you.\n"
            "Clinic line: {phone}",
            "[Auto-transcribed voicemail, 0:42, confidence 0.81]\n"
            "hi um this message is for {patient} calling from the dental office at {org} just "
            "reminding you about the {procedure} on {date} at {time} uh if that doesn't work "
            "give us a call back at {phone} okay thanks bye",
            "Well-child visit reminder\n"
            "{patient} (born {dob}) is due for the yearly physical and immunization review.\n"
            "Appointment: {date}, {time}, with {doctor}, exam room {room}.\n"
            "Bring any school, camp or sports form so the nurse can sign it that day.",
            "Dear {patient},\n"
            "A year has gone by since your last dilated eye exam, and with {diagnosis} the "
            "retina check should not slip.\n"
            "We are holding {date} at {time} for you. Reply Y to keep it or N to release it.",
            "Interpreter services ticket\n"
            "Language: Polish   Modality: in person\n"
            "For: {patient}, {specialty} with {doctor} on {date} at {time}\n"
            "Requested by {staff}, ext. {room}",
            "TASK (auto-generated) | priority routine\n"
            "Subject patient: {patient}\n"
            "Action: confirm the {procedure} slot {date} {time}; pre-auth is on file.\n"
            "Pool: outpatient scheduling. Created by {staff}.",
            "{first}, your overnight sleep study is {weekday} night, {date}. Please arrive by "
            "{time}, freshly showered, and skip caffeine after noon. Questions: {phone}.",
            "Hi {first}, the hospice nurse from {org} plans to come by on {date} around "
            "{time} to go over the {drug} supply and the comfort kit.\n"
            "If anyone at home needs us sooner, the 24-hour line is {phone}.",
            "Durable equipment fitting\n"
            "{patient} - wheelchair seating evaluation on {date} at {time}, bay {room}.\n"
            "The vendor brings a trial chair; keep the order from {doctor} handy.",
            "{org} Dental: {patient}, cleaning and bitewing x-rays on {date} at {time}. Take "
            "your {drug} an hour ahead, as {doctor} asked.",
            "Your intake appointment with the behavioral health team is confirmed, {first}.\n"
            "When: {date}, {time}\n"
            "Where: {org}, suite {room}, or by video if you prefer\n"
            "You are welcome to bring someone along. If you are in crisis before then, call or "
            "text 988.",
            "FAX COVER SHEET\n"
            "Attn: central scheduling desk   Sender: {org}   Sheets incl. cover: 3\n"
            "Re: {patient}, DOB {dob} - please book {procedure} within two weeks; ordering "
            "physician {doctor}.\n"
            "CONFIDENTIAL. If this reached you in error, notify {phone}.",
        ),
        "refill_reminder": (
            "Prior authorization update\n"
            "Member: {patient}   DOB {dob}\n"
            "Drug: {drug} {dose}\n"
            "Status: approved through {date}. The dispensing pharmacy has been notified and "
            "the first fill can go out after 2 pm.",
            "{first} - {pharmacy} here. Your {drug} is bagged on the pickup shelf. We hold it "
            "10 days, then it goes back to stock.",
            "Courtesy call transcript: This is {pharmacy} with a message for {patient}. Your "
            "prescription for {drug} has no refills left, so we faxed {doctor} for a renewal.",
            "Mail-order shipment notice\n"
            "Ship to: {patient}\n"
            "Contents: {drug} {dose} x 90 days\n"
            "Expected {date}. Someone must sign, because the box travels chilled.",
            "Hi {first}, by our count about five days of {drug} remain. Reorder in the app or "
            "phone {phone} and it will be waiting by {weekday}.",
            "Refill request routed to {doctor}\n"
            "Pt {patient}, last seen {date}, asks for {drug} {dose}; last filled 28 days ago.\n"
            "Sign or deny from the inbox before end of day.",
            "Dear {patient},\n"
            "Your insurer now prefers another brand over {drug}. Your treatment for {diagnosis} "
            "stays the same, but {doctor} must sign a fresh order before the next fill.",
            "From the medication-therapy clinic: {first}, your {drug} bottle runs out close to "
            "{date}. Please keep the level check we booked before we refill it.",
            "Specialty pharmacy enrollment\n"
            "{patient} enrolled today for {drug}. A nurse will phone about injection training; "
            "copay assistance was applied, remaining balance {amount}.",
            "{patient}: {drug} {dose} - 0 refills remaining. Renewal requested from {provider} "
            "on {date}.",
            "School health room update for {first}'s family: just two doses of {drug} remain in "
            "our cabinet. Kindly send more, along with the dosing form {doctor} signs.",
            "Automatic refills on hold: {patient}\n"
            "Reason: dose change to {dose} noted by {doctor}\n"
            "Next {drug} fill waits until the updated script arrives.",
        ),
        "result_notice": (
            "New number in your chart, {first}:\n"
            "{test}: {value}\n"
            "This falls where {doctor} expected. No need to call unless something new comes up.",
            "Results notification - {org} Laboratory\n"
            "Patient: {patient}\n"
            "Collected: {date}\n"
            "Test: {test}   Result: {value} (flagged for review)\n"
            "{doctor} will reach you within two business days.",
            "{patient}, the radiologist's read of your {procedure} has been posted. {doctor} "
            "went through it and wants to talk it over by phone; expect a call from {phone}.",
            "Hi {first}, good news: the pathology from your {procedure} came back benign. Keep "
            "the follow-up we set for {date}.",
            "Voicemail left for {patient} by {org}: please ring the nurse line at {phone} about "
            "your {test}. Not urgent, but we want to adjust the {drug}.",
            "Optometry results: {patient}'s visual field test on {date} is stable against last "
            "year's. Pressure readings support staying on the {drug} drops.",
            "Screening follow-up\n"
            "Redraw needed for {patient} | date of birth {dob}\n"
            "One value on the screening panel needs a repeat draw. This happens often and is "
            "usually normal the second time. Please come in by {date}.",
            "Dear {first},\n"
            "The allergy panel from {date} shows a reaction to dust mites and none to the foods "
            "tested. {doctor} suggests keeping {drug} going through spring.",
            "Hearing test summary for {patient}: mild high-pitch loss in the left ear. "
            "Audiology would like to recheck on {date}.",
            "RESULT ALERT (EHR)\n"
            "Abnormal {test} {value} for {patient}, resulted {date}.\n"
            "Ordering: {doctor}. Acknowledge within 24 h.",
            "{first}, your sleep study points to {diagnosis}. The equipment company will phone "
            "to fit a CPAP mask, and {doctor} sees you {date} to check how it is going.",
            "Dental x-ray findings for {patient}: two small cavities, no bone loss. Book the "
            "fillings with the front desk at {phone}.",
        ),
        "care_handoff": (
            "Case management handoff\n"
            "{patient} discharged {date} to home with services.\n"
            "Needs: home PT three times weekly, {drug} teaching, a scale for daily weights "
            "({diagnosis}).\n"
            "Community case manager: please call {phone} to accept.",
            "Hospice admission summary: {patient}, DOB {dob}, admitted under {doctor} for "
            "{diagnosis}. Goal is comfort at home; the emergency kit is in the fridge.",
            "PT to OT handoff - {patient} cleared for stairs with one rail, still needs hands-on "
            "help for shower transfers. Keep {procedure} precautions until {date}.",
            "Hi {staff_first}, passing {patient} to you for the weekend. Stable on {drug} "
            "{dose}, no fever since {date}. Only loose end: the 6 am {test} repeat.",
            "Behavioral health transition of care\n"
            "Client: {patient}\n"
            "Steps down from the intensive outpatient program {date}; first outpatient therapy "
            "visit is booked. Safety plan reviewed and copied to the chart. {doctor} continues "
            "to prescribe {drug}.",
            "Warm handoff to the school nurse: {first} returns to class {date} after "
            "{procedure}. No gym for two weeks; {drug} at lunch if the pain flares.",
            "Skilled nursing transfer packet for {patient} attached. Transfer diagnosis: "
            "{diagnosis}. Code status full. Receiving physician {colleague}.",
            "Note for the receiving team: {patient} prefers Portuguese and follows little "
            "English; please book a live interpreter for the {procedure} consent on {date}.",
            "{colleague}, handing over bed {room}: {patient}, day one after {procedure}, pain "
            "controlled on {drug}, drain output low. I updated the family at five.",
            "Equipment order passed to intake: {patient} needs a hospital bed and an oxygen "
            "concentrator before going home on {date}. Qualifying diagnosis {diagnosis}, signed "
            "by {doctor}.",
            "Closed by {staff}: {patient} moved to {org} for ongoing {specialty} care. Records "
            "went over {date}; the new team has the {drug} taper plan.",
            "Night to day report, bed {room}\n"
            "{patient} ({dob}), in for {diagnosis}; one dose of {drug} overnight; watch the "
            "{test}.",
        ),
        "billing_question": (
            "Patient accounts, {org}\n"
            "Account holder inquiry re: {patient}, dates billed {date}\n"
            "The plan denied the {procedure} charge of {amount} as out of network. An appeal "
            "is possible and the form is attached.",
            "Hi, I got a bill for {amount} for {first}'s dental cleaning on {date}, but I "
            "thought cleanings for kids were covered. Could someone look into it?",
            "Financial counselor note: {patient} asked about spreading the {procedure} cost. "
            "Balance {amount}; qualifies for twelve months with no interest.",
            "Dear {patient}, an unpaid copay of {amount} remains from your optometry visit on "
            "{date}. Pay online or phone {phone}.",
            "Ambulance billing inquiry\n"
            "Patient: {patient}   DOB: {dob}\n"
            "Transport date: {date}\n"
            "The claim needs the diagnosis ({diagnosis}) from the receiving ER; can you fax the "
            "face sheet?",
            "{first}, your MRI estimate comes to {amount} after insurance. It is an estimate, "
            "not a bill; questions to {phone} before {date}.",
            "Good afternoon. I am writing about {amount} charged for {patient}'s physical "
            "therapy on {date}. The plan says it needed prior auth, yet {doctor}'s office told "
            "us it was approved.",
            "Hospice billing: room and board for {patient} is paid by Medicaid from {date}, so "
            "the family owes nothing that month. The {amount} shown came from a system error.",
            "Account review from {staff}: duplicate {procedure} charge of {amount} on "
            "{patient}'s account. Refund approved.",
            "Equipment rental billing - {patient}: the CPAP rental for {diagnosis} converts to "
            "owned after 13 months. Current balance {amount}.",
            "The plan turned down {drug} for {patient}; the pharmacy will charge the cash price "
            "of {amount} unless {doctor} files an appeal by {date}.",
            "Re: statement question from {first}\n"
            "Thanks for writing. The {amount} is your deductible for the {procedure} on {date}, "
            "not a late fee.",
        ),
        "clinical_note": (
            "Rehab flowsheet, visit note\n"
            "{patient}, visit 4 of 12. Knee flexion 95 degrees, up from 80. Walks with a cane, "
            "no limp. Plan: advance the {procedure} protocol.",
            "Intake assessment (behavioral health). {patient} comes in about low mood since "
            "spring. Sleep poor, appetite fair. Denies thoughts of self-harm today. History of "
            "{diagnosis}. Plan: start {drug} {dose}, follow up {date}.",
            "Dental chart: {patient} seen for pain at the lower right molar, tender to "
            "percussion. Plan {procedure}; {drug} prescribed.",
            "Optometry exam - {patient} ({dob}). VA 20/40 OD, 20/25 OS. IOP 22/19. Impression: "
            "{diagnosis}. Continue {drug}.",
            "Dictation, unedited: this is {doctor} dictating on {patient}, seen in clinic {date} "
            "for follow up of {diagnosis}, tolerating {drug} without side effects, exam "
            "unremarkable, return in three months.",
            "Hospice visit note. {patient} resting, daughter at the bedside, pain 3 of 10 on "
            "{drug}. Skin intact. Goals of care unchanged.",
            "School-based health center: {first} came in wheezing after recess. Two puffs of "
            "{drug} with relief; parent notified. Assessment {diagnosis}.",
            "Speech therapy progress: {patient} now swallows thin liquids safely after "
            "{procedure}. Advance the diet per {doctor}.",
            "Case management note {date}: met {patient} at the bedside; lives alone in a "
            "third-floor walk-up. Needs {diagnosis} teaching and a home safety check.",
            "Wound care: {patient}, sacral wound stage 2, 2 x 1.5 cm, dressing changed. "
            "{test} {value} today.",
            "Telehealth - {patient} joined by video from home. Went over the {test} ({value}) "
            "and moved {drug} to {dose}.",
            "Pre-op check: {patient}, booked for {procedure} {date}. Nothing by mouth after "
            "midnight; hold {drug} that morning.",
        ),
        "name_line_start": (
            "{patient}: {procedure} moved to {date}, {time}. Same room, {room}.",
            "{patient}, your {drug} renewal was signed by {doctor} this morning.",
            "{first}: the therapy plan from {date} still needs your initials on page 2.",
            "{patient} - DOB {dob} - needs an interpreter at the {specialty} visit.",
            "Quick one\n{patient}: {test} came back {value}. {doctor} is comfortable with it.",
            "{patient}, {dob}, {diagnosis}: referred on to {specialty} {date}.",
            "{first}, the dentist wants a panoramic film before the {procedure}.",
            "{patient}: missed the {procedure} on {date}. Second phone attempt went unanswered.",
            "{patient}; prior auth for {drug} sitting with the plan since {date}.",
            "{first} - your hearing aid fitting is {date} at {time}; bring the earmold kit.",
            "Chart addendum\n{patient}: tolerated {procedure} well, home with {drug}.",
            "{patient}: please fill in the pre-visit questions about your {diagnosis} by {date}.",
        ),
        "name_inline": (
            "We spoke with {patient} on {date} about starting {drug}; the pharmacy is checking "
            "coverage.",
            "The courier collected the specimens for {patient} at {time} and they reached the "
            "lab by noon.",
            "Can you check whether {patient} still needs the {procedure} {doctor} ordered?",
            "The school asked for proof that {patient} had the {procedure}, so I faxed "
            "{doctor}'s note over on {date}.",
            "Transport confirmed that {patient} arrives by wheelchair van for the {procedure} "
            "at {time}.",
            "Our interpreter found that {patient} had not understood the {drug} instructions, "
            "so we went through them again in Polish.",
            "The hospice chaplain sat with {patient} today, and the family asked what "
            "{diagnosis} looks like near the end.",
            "Please add {patient} to {doctor}'s list on {date}; the {test} needs repeating.",
            "The optometrist suspects {patient} has early {diagnosis} and wants a field test.",
            "According to the case manager, {patient} lost Medicaid on {date} and cannot pay "
            "for the {drug}.",
            "I left a voicemail for {patient} about the {test} result ({value}); nothing back yet.",
            "The equipment supplier dropped off a walker for {patient} yesterday, and PT will "
            "set its height on {weekday}.",
        ),
        "name_greeting": (
            "Salutations {patient},\n"
            "the allergy clinic has an opening on {date} at {time} for your skin testing.",
            "{first},\n"
            "thanks for coming in for the {procedure}. Keep the dressing dry for two days.",
            "Hey {first} - quick note from PT: keep up the bridges and clamshells, see you "
            "{weekday}.",
            "Hello again {patient},\n"
            "your new glasses prescription is on file, and the {test} was normal.",
            "Dear {patient}:\n"
            "Enclosed are the forms your employer asked for about your leave for {diagnosis}.",
            "Hi {first}!!\nThe insurer approved your {drug}. Pick it up any time after {date}.",
            "Greetings {patient},\n"
            "the hospice team will visit on {date}, and the aide comes Mondays and Thursdays.",
            "Evening {first},\n"
            "following up on today's intake call: your first therapy session is {date} at "
            "{time}.",
            "To {patient}:\nYour crown is back from the dental lab; we can seat it on {date}.",
            "Hiya {first}, school nurse checking in - did the {drug} settle the {diagnosis}?",
            "Morning {patient} - the sleep lab has your home sensor kit ready; the study night "
            "is {date}.",
            "Attention {patient}:\n"
            "the MRI order from {doctor} lapses on {date}, so please schedule soon.",
        ),
        "name_list": (
            "Lab courier manifest, route 7, {date}\n{items}\nAll specimens on ice; driver {staff}.",
            "Outpatient rehab slate, {provider}, next day:\n{items}\nHave the gait belts ready.",
            "Patients who need an interpreter booked this week:\n{items}",
            "Prior auths still open, oldest first:\n{items}\nChase the plan past five days.",
            "Hospice census changes\n{items}\nBereavement calls assigned to {staff}.",
            "Dental no-shows to call back:\n{items}",
            "Sleep lab, {weekday} night:\n{items}\nTech on duty: {staff_first}.",
            "Caseload moving to {staff}:\n{items}",
            "Students missing immunization records before the district deadline:\n{items}",
            "Radiology add-ons for {date}, approved by {doctor}:\n{items}",
            "Equipment deliveries awaiting signature:\n{items}\nDriver phones ahead.",
            "Fax inbox, results not yet filed:\n{items}\nFile to chart and route to the orderer.",
        ),
        "name_table": (
            "Specimen manifest - courier pickup {time}\n{table}\nSign one copy and return it "
            "with the cooler.",
            "Weekly hospice roster\n{table}",
            "Therapy gym caseload by clinician, {weekday}:\n{table}",
            "Prior-authorization tracker export\n{table}\nStatuses refresh overnight.",
            "Eye clinic recall list\n{table}",
            "Behavioral health intake waitlist\n{table}\nCall in order; leave no details on "
            "voicemail.",
            "Dental lab cases due back\n{table}",
            "Language access: confirmed bookings\n{table}",
            "DME orders missing paperwork\n{table}",
            "School physicals due before {date}\n{table}",
            "Imaging worklist - {org}\n{table}",
            "Case management discharges\n{table}\nPing {staff} about anything odd.",
        ),
        "name_shape": (
            "Chart prep for {date}: {patient}, {diagnosis}, seeing {doctor}.",
            "RE: {patient}\nPlease forward the {procedure} report to the referring office.",
            "Pt {patient} rang the nurse line about {drug} side effects.",
            "Records request for {patient}, DOB {dob}, ahead of a {specialty} consult.",
            "{patient}'s {test} came back at {value}.",
            "Eye recall (about {patient}): diabetic retina photos due by {date}.",
            "For {patient}: fasting bloodwork on {date}, no food after 10 pm.",
            "Prior auth for {patient} - {drug} approved through the plan.",
            "Need a Tagalog interpreter booked for {patient} ({diagnosis} recheck), {date}.",
            "PATIENT NAME: {patient}\nSVC DT: {date}\nSERVICE: {procedure}",
            "Hospice referral about {patient} received; intake visit {weekday}.",
            "Dental recall - {patient} - overdue for hygiene since {date}.",
            "Fax from {org} re {patient}: {test} results enclosed.",
        ),
        "neg_staff": (
            "Grand Rounds, {weekday} {date}, {time}, auditorium {room}\n"
            '{provider} presents "Rethinking {diagnosis}". Lunch for the first sixty.',
            "CME reminder: {staff}, your certificate for the {specialty} update is ready; log "
            "in to the education portal to download it.",
            "In memoriam\n"
            "We are sad to share that {staff}, who ran sterile processing for 22 years, died "
            "last week. A remembrance will be held in the chapel on {weekday}.",
            "Congratulations to {doctor}, voted Clinician of the Year by the nursing staff for "
            "mentoring new residents.",
            "Conference travel: {staff_first}, your trip to the {specialty} meeting is approved. "
            "Book through the travel desk by {date}; per diem {amount}.",
            "Journal club this {weekday}: {colleague} leads the discussion of the {drug} trial "
            "in {diagnosis}. Papers are on the shared drive.",
            "M&M conference moves to room {room}. This month's cases come from {specialty}; "
            "presenters {doctor} and {colleague}.",
            "Residents: {staff} proctors the {procedure} simulation lab on {date}. Sign-up "
            "sheet at the front desk.",
            "Retirement party for {staff}! Cake in the break room {weekday} at {time}; the card "
            "is at the charge desk.",
            "Board minutes (excerpt): the chair thanked {provider} for the {specialty} service "
            "line report; motion to approve carried.",
            "Peer review committee: the review of {doctor}'s case moves to {date}. No action "
            "needed from the department.",
            "Please welcome {colleague}, joining {specialty} next month straight from fellowship.",
        ),
        "neg_provider": (
            "{specialty} coverage grid starting {date}\n"
            "Mon-Wed: {doctor}\n"
            "Thu-Sun: {colleague}\n"
            "Backup: {provider}",
            "Please welcome {provider} to the optometry team, seeing adults and children at "
            "{org} on {weekday}s.",
            "Signature block update:\n{provider}\n{specialty}\n{org}\nDirect line {phone}",
            "Directory correction: {doctor} has moved to suite {room}; new fax {phone}.",
            "Locum cover: {colleague} runs {doctor}'s {specialty} clinic from {date} while "
            "{doctor} is on sabbatical.",
            "Medical staff office: {provider} has cleared credentialing and may now perform "
            "{procedure} here.",
            "Referral guide: for {diagnosis} send to {doctor} ({specialty}) or {colleague}, "
            "with the latest {test} attached.",
            "Hospice medical director rota: {provider} through {date}, then {colleague}.",
            "Dental associate schedule - {doctor} stops working {weekday}s; hygiene chairs "
            "unchanged.",
            "Weekend telehealth roster\n{doctor} - adult urgent care\n{colleague} - pediatrics",
            "Prescriber verification: {provider}, NPI on file, DEA renewal due {date}.",
            "The {specialty} group welcomes referrals; {doctor} now offers same-week "
            "{procedure} slots at {org}.",
        ),
        "neg_public": (
            "News roundup: {public} spoke openly about living with {diagnosis} at a charity run "
            "this weekend.",
            "Public health bulletin: Health Commissioner {public} urged residents to get flu "
            "shots before {date}.",
            "The CME dinner keynote will be given by {public}, who chaired the national task "
            "force on {diagnosis}.",
            "Staff reading circle: {public}'s memoir of nursing a father through Alzheimer's.",
            "{public} testified before the state senate yesterday on {drug} pricing.",
            "From the history of medicine: {public} and the first {procedure} done in this state.",
            "Advisory: {public} warns that loneliness is as harmful as smoking.",
            "Gala speaker announced - {public} will talk about mental health in elite sport.",
            "On this week's podcast {public} describes the long recovery from a knee {procedure}.",
            "Sports medicine teaching case: {public}'s hamstring tear and return-to-play "
            "timelines.",
            "County press release: {public} announces new money for school-based clinics.",
            "Statement from {public} on the measles outbreak: vaccination remains the best "
            "protection.",
        ),
        "neg_place": (
            "Repaving crews take over {street} from {date}; staff cars divert to the deck "
            "behind {building}.",
            "The {fund} gala raised {amount} for the new pediatric wing. Thanks to every table "
            "sponsor.",
            "Shuttle stops have moved: {building} first, then {street}, then the main lobby.",
            "Staff flu clinic at {building}, ground floor, {weekday} from {time}.",
            "Grant awarded: the {fund} covers {amount} of new dental chairs for the community "
            "clinic.",
            "Fire drill at {building}, floors 2-5, {date} at {time}.",
            "Outpatient pharmacy opens on the ground floor of {building} on {date}; the old "
            "counter on {street} closes.",
            "Donor wall unveiling: supporters of the {fund} are invited to the {building} lobby.",
            "Construction update: the crane on {street} comes down {weekday}; expect noise near "
            "the imaging entrance.",
            "Applications for the {fund} scholarship are open until {date}.",
            "Lost and found now lives in {building}, room {room}.",
            "Clinic address change: 400 {street}, suite {room}, entrance on the east side.",
        ),
        "neg_company": (
            "Vendor demo: {company} shows its new infusion pump software on {date} at {time} "
            "in room {room}.",
            "Purchase order to {company} for {amount} of exam gloves is approved.",
            "Recall notice from {company}: affected lots of the {procedure} kits are listed in "
            "the attachment; quarantine the stock.",
            "{company} has a new remittance address; update the vendor master before the next "
            "payment run.",
            "Our courier contract with {company} renews on {date}.",
            "Reps from {company} may not enter clinical areas without a badge; send them to "
            "purchasing.",
            "Service ticket: a {company} engineer recalibrates the MRI on {weekday}.",
            "Invoice dispute: {company} billed {amount} for an equipment shipment we sent back.",
            "IT: the {company} e-prescribing interface goes live {date}.",
            "Sample closet audit for {company}: every {drug} sample logged, none expired.",
            "Please ignore the mail from {company}'s veterinary division about canine {drug} "
            "pricing; it reached us by mistake.",
            "Catering for the board retreat comes from {company}; the menu is attached.",
        ),
        "neg_hr_it": (
            "Benefits window shuts {date}; {staff} from HR can explain the dental and eye "
            "coverage tiers.",
            "Badge photo booked with {staff_first} at security, {weekday} {time}.",
            "Password reset for {staff}: the temporary password expires in 24 hours.",
            "Now hiring: front-desk coordinator for {specialty}; interviews with {doctor}, "
            "applications close {date}.",
            "A payroll correction for {staff} will show on the next stub.",
            "Laptop swap: {staff_first}, your new machine waits at the help desk in {building}.",
            "Compliance: {staff}, upload your annual health screening attestation by {date}.",
            "Facilities: the east tower elevator is out until {weekday}; {staff} arranges "
            "freight access.",
            "Exit interview with {staff} set for {date} at {time}.",
            "Maintenance window: the EHR turns read-only at {time} on {weekday}. Questions to "
            "{staff}.",
            "Reference check requested for {staff}, formerly a unit clerk here; please reply "
            "to HR.",
            "Privacy training due {date}. {staff_first}, two modules remain.",
        ),
        "neg_newsletter": (
            "THE VITAL SIGN - monthly newsletter\n"
            "In this issue: {doctor} on preventing {diagnosis}, a low-sodium soup recipe, and "
            "which vaccines summer camps ask for.",
            "Community health fair at {org} on {date}: free blood pressure checks, {test} "
            "screening, and questions for {provider}.",
            "Ask the pharmacist: {staff} answers your questions about {drug} and grapefruit.",
            "Research recruitment: adults with {diagnosis} may qualify for a study of {drug}. "
            "Contact the study coordinator at {phone}.",
            "County bulletin: pertussis cases are climbing; epidemiologist {staff} recommends "
            "boosters for anyone around infants.",
            "Wellness corner: {colleague} explains why people with diabetes need a dilated eye "
            "exam every year.",
            "Dental health month: free fluoride varnish for children at the {org} mobile van on "
            "{weekday}s.",
            "Meet the new {specialty} team: {provider} and {colleague} now see patients at {org}.",
            "Caregiver support group meets the first {weekday} of each month; facilitator {staff}.",
            "Healthy aging talk: {doctor} on {procedure}, what to expect and how to prepare.",
            "Hospice volunteer training starts {date}. Volunteers keep patients company, run "
            "errands and support families.",
            "Seasonal tip from the pediatricians: {drug} is dosed by weight, not age - ask the "
            "pharmacist.",
        ),
    },
    subjects={
        "default": (
            "Message from {org}",
            "Secure: please read",
            "FW: scanned fax",
            "EHR notification",
        ),
        "appt_reminder": (
            "Upcoming visit {date}",
            "Booking confirmed - {patient}",
            "Voicemail transcription",
        ),
        "refill_reminder": ("{drug} refill", "Prior auth decision", "Pickup reminder"),
        "result_notice": ("Lab value released", "Results for {patient}", "Please call the office"),
        "care_handoff": ("Handoff: {patient}", "Transition of care", "Weekend signout"),
        "billing_question": ("Statement question", "Balance of {amount}", "Billing re {patient}"),
        "clinical_note": ("Note signed", "Encounter note {date}", "Dictation ready"),
        "name_line_start": ("Chart update", "{patient}"),
        "name_inline": ("Following up on {patient}", "Quick update"),
        "name_greeting": ("Hello {first}", "Personal message: {patient}"),
        "name_list": ("Worklist {date}", "Manifest"),
        "name_table": ("Roster export", "Tracker {weekday}"),
        "name_caps": ("{patient} / chart", "FAX RE {patient}"),
        "name_last_first": ("Re: {patient}", "Record request {patient}"),
        "neg_staff": ("Grand Rounds {weekday}", "With sadness", "CME credit"),
        "neg_provider": ("On-call rota", "Directory change"),
        "neg_public": ("Headlines with a health angle", "Press digest"),
        "neg_place": ("Campus update", "{fund} gala"),
        "neg_company": ("Vendor demo", "Purchasing {company}"),
        "neg_hr_it": ("From HR", "Helpdesk bulletin"),
        "neg_newsletter": ("The Vital Sign", "Neighbourhood wellness roundup"),
    },
    covers=(
        "Scan enclosed per your phone request.",
        "Scanned document attached; please index it to the chart.",
        "Report pulled from the scheduling module; open the enclosure.",
        "Paperwork about {patient} attached for your records.",
        "Forwarding the fax regarding {patient}.",
    ),
    list_items=(
        "{patient} - {test} tube, drawn {time}",
        "{patient} ({dob}) - {procedure}",
        "{patient}: {drug} {dose}, waiting on the plan",
        "{patient}, {diagnosis}, returns {date}",
        "{patient} / {specialty} / {time}",
        "{patient}, born {dob}, room {room}",
    ),
    table_layouts=(
        (("Patient", "patient"), ("DOB", "dob"), ("Specimen", "test"), ("Drawn", "time")),
        (("Name", "patient"), ("Exam", "procedure"), ("Date", "date")),
        (("Client", "patient"), ("Dx", "diagnosis"), ("Clinician", "doctor")),
        (("Member", "patient"), ("Drug", "drug"), ("Strength", "dose"), ("Status date", "date")),
        (("Patient name", "patient"), ("Slot", "time"), ("Bay", "room")),
        (("Student", "patient"), ("Born", "dob"), ("Visit", "date"), ("Balance", "amount")),
    ),
    compound_surnames=(
        "dela Paz",
        "Delos Reyes",
        "San Agustin",
        "Ferreira da Silva",
        "Sousa e Costa",
        "Papadakis-Moore",
        "Nowak-Jeziorska",
        "Van den Broeck",
        "ter Haar",
        "El-Amrani",
        "Abu-Ghazaleh",
        "Kowalczyk-Berg",
        "Lindqvist-Aho",
        "Santa Maria",
        "dos Anjos Pereira",
        "Georgiou-Karras",
    ),
    apostrophe_surnames=(
        "D'Alessio",
        "Dell'Aquila",
        "N'Dour",
        "O'Flaherty",
        "Dell'Olio",
        "L'Esperance",
        "Sant'Anna",
        "Sant'Ambrogio",
        "O'Kane",
        "D'Agostino",
        "O'Gorman",
        "D'Urso",
    ),
    common_word_first=(
        "Goldie",
        "Cherry",
        "Raven",
        "Dusty",
        "Ginger",
        "Jasper",
        "Dale",
        "Heath",
        "Woody",
        "Wren",
        "Sky",
        "Pearl",
    ),
    common_word_last=(
        "Cotton",
        "Steel",
        "Sparrow",
        "Gravel",
        "Salmon",
        "Lemon",
        "Castle",
        "Haddock",
        "Hardy",
        "Moody",
        "Short",
        "Worthy",
    ),
    public_figures=(
        "Jacinda Ardern",
        "Naomi Osaka",
        "Kevin Love",
        "Tig Notaro",
        "Stephen Hawking",
        "Edward Jenner",
        "Virginia Apgar",
        "Atul Gawande",
        "Rachel Carson",
        "Paul Farmer",
        "Greta Thunberg",
        "Michael Phelps",
    ),
    companies=(
        "Hollis & Reyes Medical Supply",
        "Brennan Kowalski LLC",
        "Dahl Orthotics",
        "Petra Novak Consulting",
        "Ingram Vance Labs",
        "Beckett Lowe Imaging",
        "Sorensen Cold Chain",
        "Marlow & Finch Dental Supply",
        "Carver Pruitt Courier",
        "Nilsen Healthcare Staffing",
        "Adeyemi Ross Analytics",
        "Whitaker Bloom Catering",
    ),
    streets=(
        "Pulaski Boulevard",
        "Amundsen Drive",
        "Oyelaran Way",
        "Teodoro Street",
        "Whitcombe Lane",
        "Margarethe Court",
        "Novotny Avenue",
        "Esperanza Ruiz Drive",
        "Halloran Road",
        "Vasquez Terrace",
    ),
    buildings=(
        "Halvorsen Pavilion",
        "Dobrovolny Research Center",
        "Amalia Rocha Wing",
        "Whitfield Tower",
        "Okonkwo Clinical Building",
        "Bergstrom Hall",
        "Matthias Krug Annex",
        "Lozano Family Atrium",
        "Petrakis Imaging Center",
        "Ingrid Dahl Building",
    ),
    funds=(
        "Halvorsen Family Endowment",
        "Teresa Kowal Memorial Fund",
        "Bergstrom Scholars Fund",
        "Rocha Children's Fund",
        "Anand and Leela Prasad Fund",
        "Gunnar Eide Research Fund",
        "Marjorie Tull Hospice Fund",
        "Kostas Angelopoulos Fund",
    ),
    name_locales=NAME_LOCALES,
    name_locale_share=NAME_LOCALE_SHARE,
)
