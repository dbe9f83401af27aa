"""Quarry phrasings of the round-two corpus families (bench/corpus.py): the next judge.

DO NOT READ THIS FILE WHEN TUNING A DETECTOR, and do not generate the quarry split
(`bench/corpus.py --split quarry`) or score it (`bench/phi_accuracy.py --split quarry`)
while a detector is being worked on, not even for aggregate counts. Run it once, on a
finished detector, and report the figures as they come; a run that leads to more
detector changes uses the split up.

It holds QUARRY_BOOK: for every round-two family, mail as a hospital's relay sees it
from voices the other books were not written in: telehealth platforms' automatic mail,
home infusion pharmacies, wound-care and hospital-at-home nurses, genetic counselling,
transplant coordinators, occupational and student health, prison health services,
travel clinics, ambulance transfer notes and patient transport dispatch, chaplaincy
referrals and nutrition services; and in shapes machines make: EHR inbox messages,
secure-message digests, SMS-to-email relays, calendar invitations, spreadsheet exports,
pipe-delimited interface lines pasted into a body, and scanned forms read back with odd
spacing. PHI families name a patient with a health fact, visit, test, prescription,
result or service about them, in every position: first on a line before ":" or ",",
inside a sentence, after greetings with and without a comma, at the end of a sentence
as a vocative, in lists and tables, as "Last, First M.", in capitals, with hyphenated,
multi-part and particle surnames ("dela", "van der", "bin"), apostrophes, names that are
common words, possessives, in parentheses, after "re:", "pt", "for", "about" and
"regarding". The negative families have the same shapes with no patient in them:
graduation lists, research consortium author lines, conference programmes, donor walls,
streets, wards and buildings named after people, pharmaceutical representatives, IT
tickets naming staff, press releases quoting executives and obituaries of former chiefs.

It has its own name pools, and draws 50% of its patients', staff's and clinicians'
names from Latin-script Faker locales other than en_US, weighted towards Chilean,
Italian, Turkish, Romanian, Hungarian, Irish and British, Swiss and Belgian French,
Catalan, Lithuanian, Brazilian, New Zealand, Dutch and Yoruba names (a mix unlike the
other books'). It was written apart from the detector and its word lists and without
reading the other books' sentences; tests/test_corpus.py checks that no template is
shared with another book or a word swap of one, and that no name pool entry is shared.
"""

from __future__ import annotations

from corpus import Phrasebook

# (Faker locale, weight). Each gives Latin-script names of its own (checked by
# tests/test_corpus.py). Left out: es_AR and az_AZ (some given names end in a space,
# which a name at the end of a line would lose), vi_VN (its given names are mostly
# en_US ones), ka_GE (Georgian script), and the locales that fall back to en_US names
# (en_AU, en_PH, bs_BA, sq_AL among them).
NAME_LOCALES: tuple[tuple[str, float], ...] = (
    ("es_CL", 0.14),
    ("it_IT", 0.12),
    ("tr_TR", 0.08),
    ("ro_RO", 0.08),
    ("en_IE", 0.07),
    ("hu_HU", 0.07),
    ("en_GB", 0.06),
    ("pt_BR", 0.06),
    ("fr_CH", 0.05),
    ("fr_BE", 0.05),
    ("es_CA", 0.05),
    ("lt_LT", 0.05),
    ("en_NZ", 0.04),
    ("nl_NL", 0.04),
    ("yo_NG", 0.04),
)
NAME_LOCALE_SHARE = 0.5

QUARRY_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "BEGIN:VEVENT\n"
            "SUMMARY:{procedure} - {patient}\n"
            "DTSTART:{date} {time}\n"
            "LOCATION:{org}, room {room}\n"
            "DESCRIPTION:Booked by {doctor}; bring photo ID, your medicines and a dressing gown.\n"
            "END:VEVENT",
            "[SMS relay from {phone}] Audiology here. {first}, your hearing aid fitting with "
            "{doctor} moved to {weekday} {time}. Reply 1 to accept.",
            "Your video visit link is live, {patient}.\n"
            "Join from a quiet room ten minutes before {time} on {date}; {doctor} will admit "
            "you from the virtual lobby.\n"
            "Trouble connecting? Our platform desk answers on {phone}.",
            "Travel clinic booking for {patient}\n"
            "Pre-departure consult with {doctor} ({specialty}), {date} {time}.\n"
            "Bring your itinerary and any yellow fever certificate you already hold.",
            "Student Health Centre\n"
            "Hey {first} - just a nudge that your {procedure} is {weekday} at {time} in the "
            "annex behind the library. Campus card gets you in.",
            "Occupational health: {patient} is scheduled for a fit-for-duty review with "
            "{doctor} on {date}. The supervisor will only receive the outcome, not the notes.",
            "Genetic counselling intake confirmed\n"
            "Client: {patient}   Born: {dob}\n"
            "Session with {provider} on {date} at {time}; family members are welcome to join.",
            "Transplant clinic: {patient}, your post-graft check is set for {date}. Fast from "
            "midnight so we can draw tacrolimus trough levels before {time}.",
            "Wound clinic calendar hold - dressing change for {patient}, {weekday} {time}, bay "
            "{room}. Nurse specialist to bring silver alginate.",
            "Dispatch note: wheelchair van booked to carry {patient} to {org} for "
            "{procedure} on {date}; pickup window opens at {time}.",
            "S C H E D U L E D   V I S I T\n"
            "N a m e :  {patient}\n"
            "D a t e :  {date}   {time}\n"
            "Clinic :  {specialty} with {doctor}",
            "Hospital-at-home rota: the evening round reaches {patient} around {time}; IV "
            "antibiotics and obs, then a video check-in with {doctor}.",
            "Just confirming we'll see you {weekday} for the {procedure}, {first}",
        ),
        "refill_reminder": (
            "Home infusion pharmacy - delivery notice\n"
            "{patient}: next cassette of {drug} {dose} arrives {date} between 8 and noon.\n"
            "Keep the cooler bag by the door; our courier needs a signature.",
            "Auto-refill paused for {patient}. {doctor} has to renew {drug} before "
            "{pharmacy} can dispense again. Reply STOP to end these texts.",
            "Secure message digest (1 new)\n"
            "From {pharmacy} about {first}'s {drug}: insurer approved 90 days, co-pay {amount}.",
            "Specialty dispensing desk: {patient}'s {drug} shipment is held at customs in "
            "our depot. Call {phone} to arrange a cold-chain redelivery.",
            "Prison health services - medication line\n"
            "Resident {patient} (DOB {dob}) to receive {drug} {dose} at the {time} pill call "
            "from {date}.",
            "{first}, the travel clinic filled your malaria prophylaxis: {drug}, start two days "
            "before you fly. Collect at {pharmacy}.",
            "Reorder window open: {patient} may request more {drug} through the app from "
            "today. The last box went out on {date}.",
            "EHR inbox | Rx renewal request | {patient} | {drug} {dose} | pended for "
            "{doctor} | {date}",
            "Student pharmacy: your contraceptive refill is ready, {first}. Counter closes at "
            "{time} on {weekday}.",
            "Nutrition services here - {patient} needs another month of {drug} feeds; "
            "please countersign the standing order, {doctor}.",
            "Refill-by-mail reminder for {patient}\n"
            "Item: {drug}\n"
            "Strength: {dose}\n"
            "Tap the link to confirm your shipping address before {date}.",
            "Telehealth prescribing: {doctor} sent {drug} to {pharmacy} after your video "
            "consult today, {patient}.",
            "Nothing left on {drug} for {patient} after this fill - a new script is needed.",
        ),
        "result_notice": (
            "Your sleep study has been scored, {patient}. Apnoea index and oxygen nadir are in "
            "the portal; {doctor} will go through them on {date}.",
            "OBX|1|NM|{test}||{value}|||N|||F\n"
            "PID|||{patient}||{dob}\n"
            "Pasted from the interface queue for {doctor} to sign off.",
            "Genetic testing: the panel for {patient} came back. Your counsellor {provider} "
            "prefers to share it by phone; expect a call on {weekday}.",
            "Audiogram for {first} shows a mild high-frequency loss in the left ear; "
            "{doctor} suggests a review in six months.",
            "Occupational health screening result\n"
            "Employee: {patient}\n"
            "{test}: {value} on {date} - cleared for night shifts.",
            "Hi {first}, good news from the transplant lab: {test} steady at {value}. Keep the "
            "current dose of {drug}.",
            "Travel serology for {patient}: hepatitis A antibody positive, so no vaccine is "
            "needed before the trip.",
            "EHR inbox (result) - {patient} - {test} {value} - flagged high - please call the "
            "patient, {doctor}",
            "Wound swab from {patient}'s left heel grew staph; {doctor} started {drug} {dose} "
            "today.",
            "The {procedure} report for {patient} is signed. {doctor} has ordered a follow-up "
            "scan in three months.",
            "Student Health: your {test} from {date} is in. It's fine, {first} - nothing to do.",
            "Point-of-care {test} during the home visit: {value}. {patient} told to push "
            "fluids and we'll recheck {weekday}.",
            "Results are ready to view for {patient}",
        ),
        "care_handoff": (
            "Ambulance transfer note\n"
            "Crew handing over {patient}, DOB {dob}, from {org} to the ward.\n"
            "Known {diagnosis}; en route received {drug} {dose}. Obs stable since {time}.",
            "Hospital-at-home discharge back to GP: {patient} completed five days of IV "
            "therapy for {diagnosis}. Please review with {doctor} in a week.",
            "Chaplaincy referral - {patient} (bay {room}) asked for a visit before the "
            "{procedure} tomorrow; family anxious about the {diagnosis}.",
            "Handing {first} over to the night nurse: pump running {drug}, last obs at "
            "{time}, pain controlled.",
            "Transport dispatch: stretcher crew to collect {patient} from {org} at {time} "
            "and deliver to dialysis; oxygen 2 L required.",
            "Prison health transfer summary\n"
            "Person in custody: {patient}\n"
            "Active problems: {diagnosis}. Current medicines: {drug} {dose}.",
            "{doctor} is taking over {patient}'s wound care from {colleague} while the "
            "tissue viability nurse is on leave.",
            "Transplant coordinator to ward team: {patient} is on the active list; any fever "
            "or drop in urine output, page us on {phone}.",
            "Student health to campus counselling - {first} consented to the referral after "
            "{doctor} saw them for {diagnosis} on {date}.",
            "Nutrition handoff re {patient}: moved to texture-modified diet after the "
            "swallow test; dietitian to review on {weekday}.",
            "Secure message: {colleague}, please pick up {patient} on Monday's list; "
            "{procedure} done, drain out, home with {drug}.",
            "Occupational health is passing the case of {patient} to {doctor} "
            "({specialty}) for the return-to-work plan.",
            "Please keep an eye on bed {room} overnight - that's {patient}",
        ),
        "billing_question": (
            "Telehealth platform billing\n"
            "Video consult on {date} for {patient}: {amount}.\n"
            "Your plan did not cover out-of-network virtual care; appeal within 60 days.",
            "Hi, I'm writing about my son {patient}'s ambulance transfer bill of {amount}. "
            "Was the trip to {org} counted as an emergency?",
            "Home infusion statement - {patient}\n"
            "Nursing visits and {drug} supplies, month of {date}: {amount} after insurance.",
            "Could someone explain why the sleep study for {patient} was billed twice? "
            "Both lines say {procedure}, {amount}.",
            "Student account hold: {first}, a {amount} charge from the health centre visit "
            "with {doctor} is unpaid. Pay online or bring a waiver.",
            "Invoice query for {patient} (born {dob}) - travel vaccines on {date} were "
            "quoted at less than the {amount} we were charged.",
            "Patient transport finance: the journey for {patient} to {org} on {date} has "
            "been reimbursed, {amount} to your bank within 5 days.",
            "Re: genetic counselling fee - {patient} was told the {test} panel would be "
            "covered. We now see {amount} owing.",
            "Payment plan agreed for {patient}: {amount} a month against the {procedure} "
            "balance, first draft on {date}.",
            "Billing desk, can you check the audiology invoice for {first}? The hearing aid "
            "trial was meant to be free.",
            "Spreadsheet export, unpaid claims\n"
            "{patient};{date};{procedure};{amount};denied - no prior auth",
            "Occupational health charges for {patient}'s pre-employment screening go to the "
            "employer, not to her.",
            "Why was I charged {amount} for the wound dressings? - {patient}",
        ),
        "clinical_note": (
            "Tele-consult note, {date}\n"
            "{patient} joined by video from home. Reports worsening {diagnosis} over two "
            "weeks.\nPlan: {drug} {dose}; {test} before next call.",
            "Wound assessment: sacral ulcer on {patient} measures 3 x 2 cm, sloughy base, "
            "no odour. Dressed with foam; review {weekday}.",
            "Genetic counselling summary - {patient} (DOB {dob}) has a family history "
            "suggestive of {diagnosis}; consented to {test}.",
            "Nutrition review. {patient} has lost 4 kg since admission; started oral "
            "supplements twice daily. Weigh every {weekday}.",
            "Sleep clinic: {first} reports loud snoring and daytime sleepiness. Epworth 15. "
            "Booked for {procedure}.",
            "Prison health - nurse triage\n"
            "Seen {patient} in the cell block at {time}. Complains of chest pain; ECG done, "
            "{doctor} informed.",
            "Travel clinic assessment: {patient} heading to rural areas for three months; "
            "gave typhoid and rabies advice, prescribed {drug}.",
            "Hospital-at-home visit note - {patient} afebrile, cannula site clean, {test} "
            "{value}. Continue {drug}.",
            "Pre-op assessment {patient}\n"
            "Allergies: none known\n"
            "History: {diagnosis}\n"
            "Listed for {procedure} with {doctor}.",
            "Audiology: {patient} tolerated real-ear measurement; aids programmed, follow-up "
            "at {org} in four weeks.",
            "Occ health: {patient} reports needle-stick injury at {time}; baseline bloods "
            "taken, {drug} started within the hour.",
            "Chaplain's note: sat with {patient} and her daughter; talked about the {diagnosis} "
            "and what matters most to them.",
            "A d m i s s i o n   n o t e\nPt  {patient}   DOB  {dob}\nDx :  {diagnosis}",
        ),
        "name_line_start": (
            "{patient}: infusion nurse coming {weekday} to change the PICC dressing.",
            "{patient}, your tele-dermatology photos were received and {doctor} will reply "
            "within two working days.",
            "{patient} - transport confirmed for {procedure} at {org}, {date}.",
            "{first}: the audiology team has your new earmolds ready.",
            "{patient}; sleep diary missing for nights 3 to 5, please upload before {date}.",
            "{patient} (DOB {dob}): genetic results letter posted to home address today.",
            "{patient}: started {drug} {dose} via the home infusion service.",
            "{patient}, prison clinic - {test} repeat booked for {weekday}.",
            "{first}, the travel nurse says your yellow fever certificate is ready to collect.",
            "{patient}: occupational health cleared you for lifting duties from {date}.",
            "{patient} - diet changed to low potassium after the {test} came back {value}.",
            "{patient}, chaplaincy will visit ward {room} this afternoon as you asked.",
        ),
        "name_inline": (
            "The van crew dropped off {patient} at dialysis twenty minutes late.",
            "Overnight, our hospital-at-home nurse found {patient} short of breath and called "
            "{doctor}.",
            "I counselled {patient} about the {test} and she chose to go ahead.",
            "On the video call {patient} showed us the rash; {doctor} thinks it is contact "
            "dermatitis.",
            "Custody staff escorted {patient} to the clinic for the {procedure} on {date}.",
            "Our dietitian met {patient} at lunch and agreed a plan for the {diagnosis}.",
            "We fitted {patient} with a trial hearing aid and she heard the birds again.",
            "The transplant team has listed {patient} as urgent after the {test} result.",
            "Today the wound nurse saw {patient} for the third time this week.",
            "At the travel clinic {patient} got hepatitis A and typhoid shots.",
            "Student Health referred {patient} to {doctor} for the {diagnosis}.",
            "Please ask pharmacy whether {patient} can take {drug} with grapefruit.",
            "It was a quiet night on the sleep ward except for {patient}, whose oxygen kept "
            "dipping.",
        ),
        "name_greeting": (
            "Hello {patient},\nyour telehealth follow-up with {doctor} is on {date}.",
            "Morning {first}\nThe infusion pump for your {drug} will be swapped on {weekday}.",
            "Good evening {patient}\nA reminder from the sleep lab: no caffeine after noon "
            "before your {procedure}.",
            "Hiya {first},\nthe audiology clinic has your repaired aid back from the maker.",
            "Greetings {patient},\nthe genetics counsellor has kept {date} at {time} free for you.",
            "Evening {first} -\nyour wound photos look much better this week, says {doctor}.",
            "{first},\nthe student health team needs your consent form before the {test}.",
            "Dear Mx {patient},\nthe travel clinic has your vaccine record ready.",
            "Hey {first}!\nTransport is booked for your {procedure} on {date}.",
            "Salutations {patient},\nthe occupational health review is now scheduled.",
            "Kia ora {patient},\nthe nutrition team will phone you about your {diagnosis} diet.",
            "Thanks for calling us about the {drug}, {first}.",
        ),
        "name_list": (
            "Home infusion round, {date}:\n{items}\nCall the pharmacist on {phone} if a pump "
            "alarms.",
            "Sleep lab beds tonight\n{items}",
            "Transport dispatch manifest - {weekday}\n{items}\nDrivers: wheelchair straps "
            "checked before departure.",
            "Wound clinic caseload for {doctor}:\n{items}",
            "Travel clinic walk-ins this morning\n{items}\nCold chain log signed at {time}.",
            "Hospital-at-home virtual ward census\n{items}",
            "Genetic counselling waitlist (priority order):\n{items}",
            "Prison health clinic, wing {room}, sick call:\n{items}",
            "Secure message digest - your patients with new activity\n{items}",
            "Chaplaincy requests received overnight\n{items}\nVolunteers assigned by {staff}.",
            "Dietitian follow-ups due {date}\n{items}",
            "Occupational health immunisation recall\n{items}\nRecall post leaves the mailroom "
            "{weekday}.",
        ),
        "name_table": (
            "Virtual ward tracker, exported {date}\n{table}",
            "Infusion deliveries this week:\n{table}\nDrivers return empty cassettes to the depot.",
            "{table}\nSource: sleep lab scoring queue",
            "Transport bookings\n{table}\nAmend before 4 pm the day prior.",
            "Graft clinic tracking grid - {doctor}\n{table}",
            "Custody health clinic list\n{table}\nEscort officers notified.",
            "Travel clinic register {weekday}\n{table}",
            "Spreadsheet paste from the wound team:\n{table}",
            "Audiology recalls\n{table}\nSend reminders by text.",
            "Student health no-shows last month\n{table}",
            "Nutrition screening scores\n{table}\nScores above 2 need a dietitian referral.",
            "Occ health surveillance due\n{table}",
        ),
        "name_shape": (
            "RE: {patient} - infusion pump alarm overnight, nurse attended at {time}.",
            "PT {patient} for {procedure} {date}; transport arranged.",
            "Regarding {patient}: the genetic report is ready for the counsellor.",
            "Message about {patient} from the sleep lab - mask leak too high, retitrate.",
            "Wound photos for {patient} uploaded; {doctor} to review.",
            "({patient}) declined the travel vaccine today; counselled on risks.",
            "{patient}'s transplant bloods are due {weekday}; {test} and a full count.",
            "Audiology chart pulled for {patient}, born {dob}.",
            "Custody clinic note - {patient} - {diagnosis}, on {drug}.",
            "Referral for {patient} to nutrition services: weight loss and {diagnosis}.",
            "Occupational health file: {patient} - fit with restrictions until {date}.",
            "Ambulance handover re: {patient}; admitted to ward {room}.",
            "Chaplaincy list update: {patient} would like communion on {weekday}.",
        ),
        "neg_staff": (
            "Class of this year, School of Medicine - graduates receiving honours:\n"
            "{staff}, {provider}, and the prize in {specialty} to {colleague}.",
            "Obituary: {provider}, chief of {specialty} for two decades, died peacefully on "
            "{date}. A memorial is planned in the {building} atrium.",
            "Authors: {provider}, {staff}, {colleague} and the Northern Renal Consortium "
            "writing group.",
            "Congratulations to {staff}, our wound-care nurse of the year, nominated by her "
            "colleagues on ward {room}.",
            "{doctor} will chair the morbidity meeting on {weekday}; {colleague} presents the "
            "audit of {specialty} readmissions.",
            "Farewell drinks for {staff} after 30 years in patient transport - {weekday} at "
            "{time}, staff canteen.",
            "Journal club this week: {colleague} on remote monitoring trials. Lunch from "
            "{company}.",
            "The sleep lab welcomes {provider} as its new technical lead from {date}.",
            "Rota swap approved: {staff} covers the travel clinic, {staff_first} takes Friday "
            "triage.",
            "Exam board results - residents passing the {specialty} certificate: {provider} "
            "and {colleague}.",
            "In memoriam: {provider}, founder of our hospital-at-home service. Flowers to "
            "{street} chapel.",
            "Shout-out to {staff_first} from the dispatch desk for keeping the vans moving "
            "in the snow.",
        ),
        "neg_provider": (
            "On call tonight - transplant surgery: {doctor}; coordinator: {staff}; bleep via "
            "switchboard {phone}.",
            "{provider}, MD\n{specialty}\n{org} | {phone}\nNobody reads this mailbox on "
            "Saturdays or Sundays.",
            "New to the directory: {provider} ({specialty}), clinics at {building} from {date}.",
            "Locum cover for {doctor} during leave: {colleague}, reachable through the "
            "genetic counselling office.",
            "Sent from the tele-clinic of {provider} - please do not reply with urgent questions.",
            "Prison health services medical lead: {provider}. Deputy: {staff}.",
            "Ambulance liaison officer this month is {staff}; escalate delays to {doctor}.",
            "Kind regards,\n{staff}\nNutrition Services Manager, {org}",
            "Weekend consultant for the virtual ward: {doctor}. Pharmacist: {staff}.",
            "Student health clinicians this term: {provider}, {colleague} and nurse "
            "practitioner {staff}.",
            "Audiology team photo caption: {staff}, {provider} and {staff_first} at the new booth.",
            "{doctor} has moved to the {building} clinic; referral addresses change on {date}.",
        ),
        "neg_public": (
            "Press digest: {public} spoke about hearing loss at a charity concert; audiology "
            "inquiries rose the next day.",
            "{public} visited the children's ward for the fundraising video shoot on {weekday}.",
            "Conference programme: keynote by {public} on vaccine confidence, {time}, main hall.",
            "A magazine interview in which {public} describes a sleep disorder is circulating "
            "among staff.",
            "Overheard on the radio, {public}: take your medicines and keep your appointments.",
            "Health ministry briefing - {public} announced funding for travel vaccine clinics.",
            "Book club pick: the memoir of {public}, set partly in an intensive care unit.",
            "Documentary screening about {public} and the history of organ donation, "
            "{date} in the lecture theatre.",
            "Our hospital-at-home model got a mention from {public} on national radio.",
            "Trivia night answer: {public} was the first to back the smoke-free campus campaign.",
            "The statue of {public} outside {building} will be cleaned on {weekday}.",
            "{public} ran the marathon for the transplant charity and raised {amount}.",
        ),
        "neg_place": (
            "Road works on {street} will close the ambulance bay entrance from {date}.",
            "The {building} lifts are out of service; use the stairs by the pharmacy.",
            "Donor wall unveiling: {fund} and eleven other families thanked at {time}.",
            "Ward moves: dialysis relocates to {building}, level {room}.",
            "Parking permits for {street} are valid again after the resurfacing.",
            "{fund} grants are open to nurses studying wound care or nutrition.",
            "Evacuation practice, {building}, {weekday} {time}; muster point on {street}.",
            "The garden next to {building} now has benches donated by {fund}.",
            "Minibus pick-up point relocated: {street} is out, the {building} forecourt is in.",
            "Applications for the {fund} travel bursary close on {date}.",
            "Heating fault in {building} east wing; engineers on site until {time}.",
            "Naming ceremony: the new sleep lab will carry the name {building}.",
        ),
        "neg_company": (
            "Visiting rep from {company} will demo the new infusion pumps in room {room} at "
            "{time}.",
            "{company} has recalled one batch of wound dressings; quarantine stock by {date}.",
            "PO {room} raised with {company}: hearing aid batteries, approved by finance.",
            "Lunch-and-learn sponsored by {company}: sleep apnoea devices, {weekday}.",
            "Contract renewal with {company} for patient transport vehicles is on the "
            "board agenda.",
            "Samples policy reminder: reps from {company} may not leave stock at nursing stations.",
            "{company} sent revised pricing for enteral feed pumps; finance to review.",
            "IT notice: {company} will patch the telehealth platform on {weekday} night.",
            "The travel vaccine supplier changed to {company} from {date}.",
            "Invoice dispute with {company} over {amount} for courier services.",
            "Thanks to {company} for donating tablets to the student health waiting room.",
            "Site visit by {company} engineers to service the audiology booths.",
        ),
        "neg_hr_it": (
            "Ticket INC-{room}: {staff} cannot log in to the EHR inbox since the password "
            "reset. Assigned to {staff_first}.",
            "HR: {staff} joins payroll on {date}; please set up a badge and a locker.",
            "Helpdesk: the secure-message digest went out blank this morning. {staff} is "
            "investigating.",
            "Annual leave approved for {staff} from {date}; cover by {staff_first}.",
            "Password expiry warning for {staff}: change it before {weekday}.",
            "Facilities: {staff} reported a leak over the sleep lab corridor at {time}.",
            "Mandatory training overdue: {staff} and {staff_first} still need fire safety.",
            "The calendar invite from {staff} for the IT steering group was sent twice; "
            "ignore the copy.",
            "New starter checklist for {staff}: email, VPN, dictation licence, bleep.",
            "Change request approved by {staff}: HL7 feed to the transplant database "
            "goes live {date}.",
            "Payroll query from {staff} about overtime on the dispatch desk.",
            "Printer on ward {room} is jammed again - {staff_first} has logged a call.",
        ),
        "neg_newsletter": (
            "From the desk of the chief executive, {provider}: our virtual ward now has 40 beds.",
            'Press release: "Home infusion cuts admissions," said {provider}, director of {org}.',
            "Nutrition corner: five ways to add protein to breakfast, from {staff}.",
            "Sleep awareness week - {doctor} answers your questions about insomnia.",
            "Research news: {colleague} won a grant to study {diagnosis} in shift workers.",
            "Travel health tips before the holidays, by nurse {staff}.",
            "Meet the team: {staff_first} has driven patient transport vans for 15 years.",
            "Chaplaincy update: the quiet room in {building} is open day and night.",
            "Wellbeing bulletin - {doctor} on looking after your hearing at concerts.",
            "Student health newsletter: flu clinics run every {weekday} in {building}.",
            "Genetics service turns ten; {provider} looks back at a decade of {diagnosis} "
            "research.",
            "Occupational health reminder from {staff}: hepatitis B boosters are due for "
            "lab staff.",
        ),
    },
    subjects={
        "default": (
            "Message from the clinic",
            "[Secure] Something is waiting in your portal",
            "Fwd: from the team",
            "Automated notice",
        ),
        "appt_reminder": ("Invitation: {procedure} @ {date}", "Join link inside", "Pickup {time}"),
        "refill_reminder": (
            "Delivery of {drug}",
            "Auto-refill paused",
            "Script awaiting signature",
        ),
        "result_notice": ("Study scored", "{first}, a result is in", "Lab release {date}"),
        "care_handoff": ("Crew handover", "Virtual ward discharge", "Overnight pass-on"),
        "billing_question": ("Ambulance bill", "Infusion statement {date}", "Charge query"),
        "clinical_note": ("Tele-consult note", "Visit documented", "Assessment {date}"),
        "name_line_start": ("Update on {first}", "From the infusion desk"),
        "name_inline": ("Overnight report", "About {patient}"),
        "name_greeting": ("For {first}", "Personal and confidential"),
        "name_list": ("Round sheet {date}", "Dispatch manifest"),
        "name_table": ("Tracker export", "Sheet for {weekday}"),
        "name_caps": ("ATTN {patient}", "SCAN: {patient}"),
        "name_last_first": ("Regarding {patient}", "Chart copy {patient}"),
        "neg_staff": ("Graduation honours", "In memoriam", "Journal club {weekday}"),
        "neg_provider": ("Who is on tonight", "Directory update {date}"),
        "neg_public": ("Media clippings", "Keynote announced"),
        "neg_place": ("Estates notice", "Benefactors' plaque unveiled"),
        "neg_company": ("Rep visit", "Supplier recall"),
        "neg_hr_it": ("Ticket updated", "Payroll and leave"),
        "neg_newsletter": ("The Ward Round Weekly", "News from across the trust"),
    },
    covers=(
        "Scanned form enclosed.",
        "Here is the workbook we promised.",
        "Attached: the transfer sheet for {patient}.",
        "One file for {patient}, password sent separately.",
    ),
    list_items=(
        "{patient} - {drug} via pump, bag change {time}",
        "{time} | {patient} | {procedure}",
        "{patient} (born {dob}), awaiting {test}",
        "{patient} with {diagnosis}, under {doctor}'s care",
        "bed {room} {patient} {test} {value}",
    ),
    table_layouts=(
        (("Client", "patient"), ("Born", "dob"), ("Service", "procedure"), ("Clinician", "doctor")),
        (("Resident", "patient"), ("Drug", "drug"), ("Strength", "dose"), ("Due", "date")),
        (
            ("Passenger", "patient"),
            ("Pickup", "time"),
            ("Destination", "org"),
            ("For", "procedure"),
        ),
        (("Pt", "patient"), ("Assay", "test"), ("Reading", "value"), ("Problem", "diagnosis")),
    ),
    compound_surnames=(
        "dela Rosa-Manalo",
        "van der Heijden",
        "bin Hamzah",
        "Fonseca-Araújo",
        "Nagy-Szabó",
        "de Souza Lima",
        "Ó Súilleabháin-Quinn",
        "van Rooyen-Botha",
        "Abu Bakar",
        "delos Santos",
        "Kowalczyk-Moreau",
        "di Lorenzo",
        "ter Horst",
        "Urrutia-Etxeberria",
    ),
    apostrophe_surnames=(
        "O'Driscoll",
        "Dall'Igna",
        "M'Baye",
        "Dall'Olio",
        "O'Loughlin",
        "Mac a'Bhaird",
        "D'Cruz",
        "Ma'afu",
        "L'Estrange",
        "Dell'Anno",
    ),
    common_word_first=(
        "Rainbow",
        "Clover",
        "Velvet",
        "Honey",
        "Story",
        "Meadow",
        "Ocean",
        "Bliss",
        "Haven",
        "Serenity",
        "Marigold",
    ),
    common_word_last=(
        "Peacock",
        "Winter",
        "Mason",
        "Brook",
        "Weaver",
        "Gardener",
        "Potter",
        "Street",
        "Fairweather",
        "Bridges",
        "Ploughman",
        "Cartwright",
    ),
    public_figures=(
        "Roger Federer",
        "Malala Yousafzai",
        "David Attenborough",
        "Simone Biles",
        "Usain Bolt",
        "Angela Merkel",
        "Lionel Messi",
        "Adele",
    ),
    companies=(
        "B. Braun Melsungen",
        "Novo Nordisk",
        "Coloplast",
        "Mölnlycke Health Care",
        "Sonova",
        "ResMed",
        "Philips Respironics",
        "Dr. Reddy's",
    ),
    streets=(
        "Florence Nightingale Way",
        "Mandela Crescent",
        "Pasteur Road",
        "Curie Close",
        "Lister Terrace",
    ),
    buildings=(
        "Mary Seacole Wing",
        "Cicely Saunders House",
        "Jenner Ward",
        "Fleming Research Block",
        "Banting Pavilion",
    ),
    funds=(
        "Okonkwo Family Trust",
        "Harriet Lane Endowment",
        "Castellanos Nursing Bursary",
        "Virginia Apgar Fund",
    ),
    name_locales=NAME_LOCALES,
    name_locale_share=NAME_LOCALE_SHARE,
)
