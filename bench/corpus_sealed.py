"""Sealed phrasings of the round-two corpus families (bench/corpus.py): the judge.

DO NOT READ THIS FILE WHEN TUNING A DETECTOR, and do not generate the sealed split
(`bench/corpus.py --split sealed`) or score it (`bench/phi_accuracy.py --split sealed`)
while a detector is being worked on, not even for aggregate counts. Run it once, on a
finished detector, and report the figures as they come; a run that leads to more
detector changes uses the split up.

It holds SEALED_BOOK: for every round-two family, letters as they reach a hospital's
mail relay from many senders (patient portals, pharmacies, insurers, home-health and
dialysis agencies, skilled-nursing facilities, school nurses, interpreters, couriers,
relatives writing in, forwarded and quoted threads, text-message gateways, dictated
notes), some in the English of people whose first language is Spanish, Portuguese,
French, Vietnamese or Tagalog, and some in those languages. PHI families name a patient
together with a health fact, visit, test, prescription, result or provider about them,
in every position: first word of a line, inside a sentence, after greetings of many
kinds or none, in lists and tables, in quoted replies, in subject-like first lines,
after "re:", "pt", "for", "about", "regarding", "of", "with", before a possessive, in
parentheses, as the object of "saw", "called", "admitted", "discharged", "referred",
"scheduled". The negative families have the same shapes with no patient in them:
rotas, credentialing, education, research, donors, staff obituaries, public figures
with health topics, places, funds and companies that look like people's names, HR,
IT, facilities and vendor mail, newsletters, job postings, drug representatives.

It also has its own name pools, and draws 45% of its patients', staff's and
clinicians' names from Latin-script Faker locales other than en_US, in a mix unlike
the other books'. It was written apart from the detector and its word lists and
without reading the other books' sentences; tests/test_corpus.py checks that no
template is shared with another book or a word swap of one, and that no name pool
entry is shared.
"""

from __future__ import annotations

from corpus import Phrasebook

# (Faker locale, weight). Each gives Latin-script names (checked by tests/test_corpus.py);
# tl_PH and fil_PH are left out because they give en_US names, so Filipino surnames come
# through the compound and apostrophe pools and es_ES instead.
NAME_LOCALES: tuple[tuple[str, float], ...] = (
    ("es_MX", 0.16),
    ("es_CO", 0.06),
    ("es_ES", 0.04),
    ("vi_VN", 0.1),
    ("en_IN", 0.08),
    ("pt_BR", 0.08),
    ("fr_CA", 0.04),
    ("fr_FR", 0.03),
    ("ig_NG", 0.04),
    ("ha_NG", 0.02),
    ("en_NG", 0.02),
    ("sw", 0.03),
    ("pl_PL", 0.03),
    ("ro_RO", 0.03),
    ("it_IT", 0.03),
    ("tr_TR", 0.03),
    ("uz_UZ", 0.02),
    ("cs_CZ", 0.02),
    ("hu_HU", 0.02),
    ("nl_NL", 0.02),
    ("de_DE", 0.02),
    ("lt_LT", 0.01),
    ("sv_SE", 0.01),
    ("da_DK", 0.01),
    ("fi_FI", 0.01),
)
NAME_LOCALE_SHARE = 0.45

SEALED_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "AUTOMATED NOTICE - do not reply to this address\n"
            "{patient} is booked for {procedure} at {org}, {weekday} {date}, arrival {time}.\n"
            "Parking validation and the map are at the front kiosk; bring every pill bottle "
            "you take.",
            "{org} alert: {first} - {procedure} w/ {doctor} {date} @ {time}. "
            "Y=keep N=cxl. STOP=optout",
            "Buenos días {patient},\n"
            "Tiene programado un {procedure} con {doctor} para el día {date}, hora {time}.\n"
            "Si necesita intérprete, llame al {phone} antes del {weekday}.",
            "Olá {first},\n"
            "Sua consulta com {doctor} ({specialty}) ficou marcada para {date} às {time} "
            "na {org}.\n"
            "Qualquer dúvida, ligue {phone}.",
            "Kính gửi {patient},\n"
            "Your appointment for {procedure} is on {date} at {time}, {doctor} office, "
            "room {room}.\n"
            "Please no eat after midnight before, thank you so much.",
            "Magandang araw po! Reminder lang po for {patient}: {procedure} with {doctor} "
            "on {date}, {time}.\n"
            "Pakidala po ang insurance card at valid ID.",
            "Bonjour {patient},\n"
            "Petit rappel : rendez-vous de {procedure} le {date} à {time} avec {doctor}, "
            "salle {room}.",
            "VISIT DETAILS\n"
            "Who: {patient}\n"
            "Clinician: {provider}\n"
            "When: {date} {time}   Where: {org}, suite {room}\n"
            "Why: follow-up of {diagnosis}",
            "We have you down, {first}, for the {procedure} that {doctor} ordered; the "
            "slot is {weekday} {date} at {time}.\n"
            "Late arrivals past fifteen minutes get rebooked, sorry.",
            "Pre-visit checklist for {patient} (DOB {dob})\n"
            "[ ] Hold {drug} 48h ahead of {procedure} ({date})\n"
            "[ ] Ride home arranged, no driving after sedation",
            "{patient} - shuttle pickup confirmed for {date}, {time}, going to {org} for "
            "dialysis with {doctor}. Driver calls ten minutes out.",
            "{patient}'s virtual appointment with {doctor} ({date}, {time}) runs in the app; "
            "join five minutes early with the camera on.",
            "hey {first} its the front desk at {org}, just a heads up {doctor} moved your "
            "{procedure} to {time} on {date}, same room",
            "Interpreter services has been requested (Vietnamese) for {patient}, "
            "{procedure} with {doctor}, {date} {time}, clinic room {room}.",
        ),
        "refill_reminder": (
            "{pharmacy}: {first}, the {drug} {dose} is bagged and waiting at the "
            "drive-thru window. Held until {weekday}.",
            "Refill request received for {patient}\n"
            "Medication: {drug} {dose}\n"
            "Prescriber contacted: {doctor}; we fax again if no answer by {date}.",
            "Hola {first}, su receta de {drug} ya está lista en {pharmacy}. "
            "Puede recogerla hasta el {weekday}.",
            "{patient}, your mail-order shipment of {drug} ships {date}; a signature is "
            "required because it needs refrigeration.",
            "Auto-refill paused for {patient}: the insurer wants a prior authorization "
            "for {drug} before it pays. {doctor}'s office has been notified.",
            "Hi po, yung {drug} ni Lola ({patient}) ready na po sa {pharmacy}, "
            "pwede na pong kunin bukas.",
            "Pharmacist note - counseled {patient} on {drug} {dose}; take with food, "
            "avoid grapefruit; next fill due {date}.",
            "Bom dia! O remédio {drug} de {patient} chegou na {pharmacy}. "
            "Retirar até {date}, por favor.",
            "Your 90-day supply of {drug} for {patient} was denied refills by {doctor} "
            "until a visit happens. Book one at {phone}.",
            "Message from {pharmacy} for {first}: we only had a partial quantity of "
            "{drug}; the rest arrives {weekday} afternoon.",
            "re: {patient} - out of {drug} since Sunday, daughter says the bottle is empty, "
            "can {doctor} send a new script to {pharmacy}?",
            "{first}, chúng tôi nhắc: thuốc {drug} {dose} của bạn sắp hết. "
            "Please call {phone} to renew with {doctor}.",
            "Controlled-substance pickup for {patient} ({drug}) needs photo ID at the "
            "counter; early fills before {date} will not be processed.",
            "Please can the {drug} be refilled, only two tablets left at home.\n"
            "Many thanks,\n"
            "Thu, granddaughter and caregiver of {patient}, {phone}",
        ),
        "result_notice": (
            "{patient}: results have posted. {test} came back at {value}; {doctor} "
            "reviewed them and left a comment.",
            "Panic lab phoned through to {doctor}, {time}\n"
            "Patient {patient}, {test} {value}, read back and confirmed by RN {staff}.",
            "Estimado(a) {patient}, el resultado de su {test} fue {value}. "
            "El {doctor} quiere verle antes del {date}.",
            "Good afternoon {first}, the pathology from your {procedure} on {date} was "
            "benign. Nothing more is needed until next year.",
            "Prezado(a) {first}, o exame {test} deu {value}. Vamos repetir em três meses, "
            "conforme orientação do {doctor}.",
            "Imaging addendum - {patient}, DOB {dob}: comparison with the prior study "
            "shows stable findings; impression unchanged, {diagnosis}.",
            "Hi {first}!! Your culture grew nothing, so you can stop the {drug} early, "
            "{doctor} says. Feel better.",
            "Result letter\n"
            "Regarding {patient}\n"
            "Your {test} of {value} on {date} is a little high. Please repeat the test "
            "fasting, any weekday morning.",
            "{patient}'s newborn screen came back normal on {date}; the hearing test "
            "still needs a recheck at {org}.",
            "Anh/Chị {first} ơi, kết quả {test} là {value}, bác sĩ {doctor} nói cần tái "
            "khám ngày {date}.",
            "Nakuha na po namin ang result ni {patient}: {test} {value}. "
            "Pinapabalik po kayo ni {doctor} sa {date}.",
            "Dear family of {patient}, the biopsy confirmed {diagnosis}. {doctor} would "
            "like to meet with you in person on {weekday}.",
            "Bonjour {first}, votre bilan ({test}) est revenu à {value}, tout va bien "
            "selon {doctor}.",
        ),
        "care_handoff": (
            "SBAR for the oncoming shift\n"
            "S: {patient} in {room}, came in {date}, working dx {diagnosis}\n"
            "B: on {drug} {dose}, last {test} {value}\n"
            "R: page {doctor} if pressure drops again",
            "Accepting {patient} in transfer from {org}; family aware, bed {room} is "
            "being cleaned, ETA {time}.",
            "Home health intake: {patient} discharged {date} after {procedure}, needs "
            "wound checks twice weekly and {drug} teaching.",
            "Passing {first} to you for tonight - stable, pain controlled on {drug}, "
            "{colleague} still owes a consult note.",
            "We discharged {patient} to the skilled nursing unit at {org} today; the med "
            "rec lists {drug} {dose} and follow-up with {doctor} on {date}.",
            "Handoff at {time}\n"
            "- {patient} (rm {room}): post-op day one, {procedure}, ambulating\n"
            "- awaiting {test}, ordered by {doctor}",
            "Paciente {patient} pasa a piso {room} desde urgencias; diagnóstico "
            "{diagnosis}, pendiente interconsulta con {colleague}.",
            "{doctor} admitted {patient} overnight with {diagnosis}; please round on them "
            "first, the spouse is at the bedside and anxious.",
            "Dialysis unit, please note: {patient} missed Saturday's run, "
            "{test} today {value}, nephrology ({colleague}) aware.",
            "Telemetry sign-out - {patient} converted back to sinus around {time}, "
            "{drug} drip stopped, next troponin due at the top of the hour.",
            "Pt {patient} handed to {colleague} for the weekend; keep NPO after midnight "
            "for {procedure} on {weekday}.",
            "School nurse here: {first} came to the office wheezy after recess, got "
            "{drug} per the care plan, picked up by a parent at {time}.",
            "Bệnh nhân {patient} chuyển khoa lúc {time}; bệnh {diagnosis}, "
            "please continue {drug} every eight hours.",
        ),
        "billing_question": (
            "Statement inquiry - {patient}\n"
            "The {procedure} on {date} billed {amount}, but the EOB says in-network. "
            "Can someone in patient accounts explain?",
            "Hello, I write for my relative {patient} who got a bill for {amount} "
            "from the {test} in {date}, we already paid at the window.",
            "{patient} set up a payment plan: {amount} monthly starting {date}, for the "
            "{procedure} balance. Autopay confirmed by {staff}.",
            "Buenas tardes, soy {patient}, me llegó una factura de {amount} por la "
            "consulta con {doctor}. ¿Mi seguro no la cubre?",
            "Pre-service estimate for {first}: {procedure} at {org} is expected to cost "
            "you {amount} after your deductible.",
            "Olá, meu nome é {patient}. Recebi uma cobrança de {amount} pelo exame "
            "{test}. Já paguei no dia {date}, tenho o recibo.",
            "Claim resubmitted for {patient} (DOB {dob}) with diagnosis {diagnosis}; "
            "denial code CO-16 cleared, expected payment {amount}.",
            "Financial assistance approved: {patient}'s charges for the {procedure} are "
            "reduced to {amount}. Letter goes out {weekday}.",
            "Good day, why was {first} charged twice for the {drug} injection on {date}? "
            "Two line items for {amount}.",
            "Workers' comp adjuster asking about {patient}: need the itemized bill and "
            "{doctor}'s notes for the {procedure}.",
            "Sir/Madam, this is for account of {patient}, I lost job and can't pay "
            "{amount} now for the hospital stay, what I can do?",
            "Hi po, ask ko lang po bakit may bill si {patient} na {amount} para sa "
            "{procedure}, covered naman po sa HMO.",
            "Refund issued: overpayment of {amount} on {patient}'s account from the "
            "{date} visit with {doctor}.",
        ),
        "clinical_note": (
            "Progress note, {date}\n"
            "{patient} seen in clinic with spouse. Known {diagnosis}. Tolerating "
            "{drug} {dose}. Plan: {test} in six weeks, return to {doctor}.",
            "Referral letter\n"
            "Dear {colleague},\n"
            "Thank you for seeing {patient}, a pleasant person with {diagnosis} "
            "refractory to {drug}. I would value your opinion on {procedure}.",
            "Telephone encounter: called {patient} back at {time}; reports dizziness "
            "since starting {drug}. Advised to halve the dose, {doctor} agrees.",
            "Consult requested - {specialty} - for {patient}: worsening {diagnosis} "
            "despite therapy. Requesting provider {provider}.",
            "Voice-recognition transcript, unproofed: {patient} is a {diagnosis} "
            "patient who underwent {procedure} on {date} without complication.",
            "Nota de evolución: {patient} refiere mejoría; continúa {drug} {dose}. "
            "Próximo control con {doctor} el {date}.",
            "Operative summary - {patient}\n"
            "Procedure: {procedure}\n"
            "Surgeon: {provider}\n"
            "EBL minimal; to PACU at {time} in stable condition.",
            "Saw {patient} today for {diagnosis}; exam unremarkable apart from mild "
            "edema. Ordered {test}; RTC with {doctor} in a month.",
            "Nursing note {time}: {first} resting, family at bedside, {drug} given as "
            "ordered, no acute distress.",
            "Hospice visit: {patient} comfortable, eating little, daughter managing "
            "{drug} well; chaplain to visit {weekday}.",
            "Social work: {patient} lives alone, needs transport to {org} for "
            "{procedure}; referred to county van program.",
            "ED course - {patient}, arrived {time} by ambulance with chest pain; "
            "{test} {value}; cardiology ({colleague}) paged.",
            "Behavioral health intake for {patient} (DOB {dob}): history of "
            "{diagnosis}, currently on {drug}.",
        ),
        "name_line_start": (
            "{patient} - lab drawn at {time}, {test} pending, {doctor} to review.",
            "{patient}: cleared for {procedure} on {date}; anesthesia note attached.",
            "{patient}, your {drug} dose changes to {dose} starting tomorrow per {doctor}.",
            "{first}: the wound photos look better; keep the dressing dry until {date}.",
            "{patient} (room {room}) - falls risk, {diagnosis}, on {drug}.",
            "{patient}'s mammogram is overdue; please schedule at {org} before {date}.",
            "{patient} no-showed the {procedure} with {doctor} on {date}; second missed "
            "visit this quarter.",
            "{first} - call us back about the {test} when you have a minute, {phone}.",
            "{patient} >> {diagnosis} >> {doctor} >> recheck {date}",
            "{patient} was referred to {colleague} for {procedure} after the {test} "
            "came back at {value}.",
            "{patient} and family asked for a second opinion on {diagnosis}; "
            "sending records to {colleague}.",
            "{patient}, {dob}, needs a tetanus booster before the {procedure}.",
            "{first}, quick one: is the {drug} still making you nauseous?",
        ),
        "name_inline": (
            "This morning we saw {patient} for {diagnosis}, and {doctor} started {drug}.",
            "Could you fax the operative report of {patient} to {org}? The {procedure} "
            "was done on {date}.",
            "I am writing about {patient}, who is scheduled for {procedure} on {date} "
            "and still has an open question about {drug}.",
            "Our team called {patient} twice about the {test}, no answer, voicemail "
            "full; will try the emergency contact.",
            "Yesterday {doctor} discharged {patient} home with {drug} and a follow-up "
            "{test} on {date}.",
            "Please add a note that {patient} is allergic to {drug}; the {procedure} "
            "on {date} is still on.",
            "The records for {patient} were requested by {org} regarding the "
            "{diagnosis} treated here last spring.",
            "My brother-in-law {patient} had the {procedure} with {doctor} and keeps "
            "asking when driving is allowed again.",
            "We scheduled {patient} with {colleague} for {procedure}; insurance "
            "pre-cert is in process.",
            "Can {doctor} sign the disability form for {patient} before {date}? "
            "Diagnosis on the form: {diagnosis}.",
            "Yes, I spoke with {patient} this afternoon and confirmed the {drug} dose is {dose}.",
            "Translator notes the son of {patient} asked twice about the {test} number ({value}).",
            "FYI the transport for {patient} to {org} for {procedure} fell through; "
            "rebooking for {weekday}.",
            "Last week {doctor} referred {patient} to {colleague} because the {diagnosis} "
            "was not settling on {drug}.",
        ),
        "name_greeting": (
            "Hey {first}!\n"
            "Quick reminder your {procedure} prep starts {weekday} night. Clear liquids "
            "only, {doctor}'s team",
            "Morning {patient} :)\n"
            "Here is the after-visit summary from {date}: continue {drug} {dose}, "
            "recheck {test} in two weeks.",
            "{first},\n"
            "{doctor} read your message about the {drug} side effects and wants you "
            "to call {phone} today.",
            "Hola {first}:\nLe escribimos de {org}. Su {test} está listo; pase a recoger la copia.",
            "Hello dear {first},\n"
            "It was lovely to see you on {date}. The {diagnosis} is well controlled, "
            "keep walking every day.",
            "Greetings {patient},\n"
            "Your physical therapy for {diagnosis} starts {date} at {time} with "
            "{staff}.",
            "Hiya {first}!\n{doctor} e-prescribed {drug}; pick up at {pharmacy}.",
            "Chào {first},\nPhòng khám nhắc: bạn có hẹn {procedure} ngày {date} lúc {time}.",
            "Oi {first}, tudo bem?\n"
            "{doctor} pediu para remarcar seu {procedure}; temos vaga em {date}.",
            "Salut {first},\nLe {doctor} a bien reçu vos analyses ({test}). On en parle {weekday}.",
            "Welcome to the clinic, {patient}!\n"
            "Your first visit with {provider} is {date}; fill in the health history "
            "before coming.",
            "Sup {first} - mom asked me to text, your {drug} refill is at "
            "{pharmacy} (from {doctor}'s nurse)",
            "To {patient}:\n"
            "Per {doctor}, the {procedure} on {date} has been approved by your plan.",
        ),
        "name_list": (
            "{doctor} sees these folks {date}:\n"
            "{items}\n"
            "{staff} pulled and flagged the charts overnight.",
            "Tomorrow's {procedure} list at {org}:\n{items}",
            "Outstanding prior authorizations, please chase:\n{items}\nThanks, {staff_first}",
            "Vaccination catch-up call list (pediatrics):\n{items}",
            "Missed-appointment letters to mail (DNA this week):\n{items}",
            "Dialysis chair assignments, {weekday}:\n{items}",
            "Pacientes pendientes de resultados:\n{items}",
            "{staff_first}'s driving route of home calls, {date}:\n"
            "{items}\n"
            "Mileage form due Friday.",
            "Census at {time}:\n{items}\nTwo admits pending from the ED.",
            "Patients to recall for abnormal {test}:\n{items}",
            "Danh sách bệnh nhân tái khám:\n{items}",
            "Waitlist moved up for cancellations with {doctor}:\n{items}",
        ),
        "name_table": (
            "Weekly infusion schedule\n{table}",
            "OR whiteboard snapshot, {date}, subject to bumps:\n{table}\nUpdates to "
            "{staff}, periop desk.",
            "Lab follow-up tracker\n{table}",
            "Referral log, {specialty}:\n{table}",
            "Chart audit sample (keep internal)\n{table}\nAuditor: {staff}",
            "Bed board at {time}\n{table}",
            "Transport requests for {weekday}\n{table}",
            "Tabla de citas - {org}\n{table}",
            "Pending denials to appeal this month\n{table}",
            "Rounding sheet {doctor}\n{table}",
            "Immunization registry upload, batch of {date}\n{table}",
            "Home oxygen deliveries\n{table}\nDriver dispatch: {phone}",
        ),
        "name_shape": (
            "RE: {patient}\nYes, {doctor} signed off on the {procedure}; prep instructions sent.",
            "Fwd by switchboard (original below)\n"
            "Sender: reception team ({org})\n"
            "Patient {patient} asked us to forward the {test} result ({value}) to "
            "{colleague}.",
            "> On {weekday}, {doctor} wrote:\n"
            "> Can we move {patient} to the early {procedure} slot?\n"
            "Done, {date} at {time}.",
            "pt {patient} c/o worsening {diagnosis}; {drug} increased to {dose}.",
            "Enviado desde mi teléfono: el paciente {patient} no vino a su {procedure}, "
            "favor de llamar al {phone}.",
            "Prior auth for {patient} ({procedure}) approved through {date}; ref number "
            "on file with {org}.",
            "Lab requisition - {patient} - {test}, fasting, draw after {time}.",
            "Regarding {patient}: the {diagnosis} flare settled after the {drug} "
            "taper, per {doctor}.",
            "Thanks to everyone on the third floor for the kindness.\n"
            "We are still worried about the {diagnosis} since the {procedure}.\n"
            "-- Rosa, eldest daughter of {patient}",
            "Gửi phòng khám, tôi là con của {patient}; bệnh {diagnosis} nặng hơn, "
            "cần đổi lịch hẹn với {doctor}.",
            "Gusto po naming i-inform na si {patient} ay na-admit kagabi dahil sa {diagnosis}.",
            "Para {doctor}: {patient} teve alta em {date}, continua com {drug}.",
            "Fax cover: records of {patient}, DOB {dob}, attention {colleague}, {specialty}.",
            "About {patient} - the {test} was hemolyzed, redraw ordered for {date}.",
            "Sign-in sheet photo shows {patient} checked in at {time} for the "
            "{procedure} with {doctor}.",
        ),
        "neg_staff": (
            "Nursing rota, {weekday}: {staff} is charge on 4 West; the float pool covers "
            "the step-down unit.",
            "Shout-out: {staff} aced the CCRN certification, sheet cake by the Pyxis at {time}.",
            "{doctor} and {colleague} are swapping the {date} call; please update the switchboard.",
            "Credentialing reminder: {provider}'s privileges for {procedure} expire "
            "{date}; the committee meets {weekday}.",
            "Grand rounds {date} at {time}: {doctor} on new guidelines for "
            "{diagnosis}, auditorium {room}.",
            "In memoriam. Our colleague {staff}, a nurse here for thirty-one years, "
            "died on {date} after a long illness. Service at {building}.",
            "Peer review committee: {doctor} presents two cases of {diagnosis}, "
            "identifiers removed, {weekday} {time}.",
            "Staff flu clinic: {staff} gives the shots in room {room}, {date}, no "
            "appointment needed; ask about the {drug} shortage too.",
            "Welcome {provider}, our new {specialty} hire, who starts {date}; "
            "lunch with the department at {time}.",
            "Reminder to all residents: M&M with {colleague} moved to {weekday}.",
            "The team potluck for {staff_first}'s retirement is {date}; sign up for a "
            "dish by {weekday}.",
            "Sim lab booked for {procedure} skills, {date}, instructor {doctor}.",
            "Paalala po sa lahat ng staff: si {staff} ang naka-duty sa ER ngayong "
            "{weekday}, kasama si {doctor}.",
            "Journal club: {staff} picks a trial of {drug} in {diagnosis}; pizza provided.",
            "Aviso al personal: {staff} cubre la guardia nocturna del {date}; "
            "el {doctor} queda de respaldo.",
        ),
        "neg_provider": (
            "On-call tonight\n{specialty}: {doctor}, pager via {phone}\nBackup: {colleague}",
            "--\n"
            "{provider}\n"
            "Attending, {specialty}\n"
            "{org} | {phone}\n"
            "This inbox is not monitored for urgent matters.",
            "Address book change - {provider} ({specialty}) has moved offices to {building}.",
            "Dr. directory correction - {doctor}'s fax is {phone}, not the old line.",
            "Locum coverage: {colleague} covers {doctor}'s panel {date} through {weekday}.",
            "CME certificate issued to {provider}: 4 credits, {diagnosis} update course, {date}.",
            "Provider availability {weekday}: {doctor} AM only, {colleague} full day, "
            "{staff} (NP) PM.",
            "NPI and DEA renewal due for {provider}; medical staff office needs copies by {date}.",
            "Speaker bio: {doctor} trained at {org} and has published on {procedure} outcomes.",
            "Malpractice carrier letter for {provider} filed; no action needed.",
            "Out of office until {date}. For clinical questions contact {colleague} at {phone}.",
            "Tumor board panel this {weekday}: {doctor} (surgery), {colleague} "
            "(oncology), {staff} (pathology).",
        ),
        "neg_public": (
            "Headline: {public} opens up about living with {diagnosis} and urges "
            "people to get screened.",
            "Our blog this month: what {public}'s knee surgery teaches about {procedure} recovery.",
            "Fundraiser gala on {date} - keynote by {public}, who survived "
            "{diagnosis} and now campaigns for research.",
            "Did you see {public} pulled out of the final with a hamstring injury? "
            "Team physio says four weeks.",
            "Book club pick: the memoir by {public} about caring for a parent with {diagnosis}.",
            "Press statement: {public} thanks the staff after the {procedure} and is "
            "resting at home.",
            "Podcast episode {room}: {public} and {doctor} talk about {drug} and "
            "the cost of insulin.",
            "Health policy digest - {public} introduced a bill on {drug} pricing this week.",
            "Trivia for the break room: which president had {diagnosis}? Hint: not {public}.",
            "Charity run named for {public} raises money for {diagnosis} research; "
            "register by {date}.",
            "Op-ed by {public}: why rural hospitals must keep their {specialty} units open.",
            "Museum exhibit on the polio years features letters from {public}.",
        ),
        "neg_place": (
            "The {building} garage closes {date} for resurfacing; use the lot on {street}.",
            "{fund} awards two nursing scholarships this year; applications due {date}.",
            "Campus tram reroute: it now loops {street} and {building} on the "
            "quarter-hour, first run {time}.",
            "Wayfinding: {specialty} has relocated to floor {room} of {building}.",
            "A gift to the {fund} will buy a new scanner for {procedure} imaging.",
            "Power shutdown in {building} {weekday} night; {specialty} moves to the "
            "{street} annex.",
            "Ribbon cutting at {building} on {date} with {doctor} and the board.",
            "The {fund} quarterly report: {amount} granted for {diagnosis} outreach.",
            "Construction detour on {street} near the ER entrance until {date}.",
            "Book the {building} conference room through facilities, ext. {room}.",
            "Mailing address change: pharmacy services now at 400 {street}.",
            "Commemorative plaque for {building} namesake to be unveiled {weekday} at {time}.",
        ),
        "neg_company": (
            "Purchase order to {company} for {drug} vials approved; delivery {date}.",
            "{company} recall notice: lot numbers of {drug} affected, check shelves by {weekday}.",
            "Vendor demo: {company} presents its {procedure} planning software, "
            "{date} {time}, room {room}.",
            "Hi, this is {staff_first} from {company}; can I take fifteen minutes of "
            "{doctor}'s time to discuss {drug} samples?",
            "Invoice {room} from {company}: {amount} for linen service, net 30.",
            "Contract renewal with {company} (biomedical equipment) goes to the board {date}.",
            "Sales offer: {company} has {drug} at {amount} per case through {date}.",
            "{company} sent the wrong {specialty} catalogue again; returning it.",
            "Benefit fair: {company} dental and vision reps at {building}, {time}.",
            "Shipment tracking: {company} courier delivered the {test} kits to receiving.",
            "Formulary committee weighs {company}'s new {drug} biosimilar against the current one.",
            "The {company} webinar on {diagnosis} coding is {weekday}; CEU credit.",
        ),
        "neg_hr_it": (
            "Security office in {building}: replacement swipe cards handed out after {time} only.",
            "Password expires in 3 days. Reset at the self-service portal or call {phone}.",
            "Open enrollment ends {date}. {staff} in HR can walk you through the health plans.",
            "Now hiring at {org}: night-shift RN for {specialty}, sign-on bonus, closes {date}.",
            "Timesheet approvals for {staff} are late; payroll closes {weekday} at {time}.",
            "The EHR downtime window is {date} {time}; use paper {procedure} consent forms.",
            "Parking permit for {staff} renewed; sticker in the mail.",
            "Facilities ticket {room}: leak above the {specialty} nurses' station, bucket placed.",
            "Employee health: {staff_first}, your TB test reading is due {weekday}.",
            "Laptop for {staff} has been imaged and is ready in IT, room {room}.",
            "Mandatory HIPAA training for new hires, {date}, taught by {staff}.",
            "Conference invitation: regional {specialty} summit, {date}, registration {amount}.",
            "Lost and found: a stethoscope left at {building} - claim from security.",
            "Comunicado do RH: {staff} assume a coordenação de {specialty} a partir de {date}.",
        ),
        "neg_newsletter": (
            "THE PULSE - monthly staff newsletter\n"
            "Spotlight: {doctor} on treating {diagnosis} in teens\n"
            "Also: {drug} shortage update",
            "Neighbourhood outreach van parks outside {building} on {date} offering "
            "no-cost {test} checks.",
            "Research corner: enrolment opens for a trial of {drug} in {diagnosis}; PI {doctor}.",
            "Donor wall: thank you to {staff} and the {fund} for this year's gifts.",
            "Wellness tip of the week from {staff_first}: stairs instead of the lift.",
            "Department news: {colleague} won the teaching award; {specialty} "
            "celebrates ten years.",
            "Season of giving: sign the card for {staff}, retiring from {specialty}.",
            "From the CMO: why we are adopting new {procedure} protocols; questions to {doctor}.",
            "Patient-safety digest: look-alike packaging of {drug} and a similar "
            "drug; extra check required.",
            "Blood drive {date} at {building}; goal 80 units.",
            "Alumni update - {provider} publishes on {diagnosis} in a major journal.",
            "Recipes from the cafeteria, and {staff_first}'s marathon story.",
        ),
    },
    subjects={
        "default": (
            "Message from {org}",
            "[secure] portal notification",
            "Fwd: pls see below",
            "Re: re: the thing you asked",
            "{org} - action requested",
            "Update {date}",
        ),
        "appt_reminder": (
            "{first}, confirm {date}",
            "Reminder: {patient} {date} {time}",
            "Cita {date} - {patient}",
            "Upcoming {procedure}",
        ),
        "refill_reminder": (
            "Rx ready: {patient}",
            "{drug} refill",
            "Re: {patient} meds",
        ),
        "result_notice": (
            "Lab posted - {patient}",
            "Your {test} result",
            "Resultado de exame - {first}",
        ),
        "care_handoff": (
            "Handoff {patient}",
            "Transfer: {patient} to {org}",
            "Sign-out {weekday}",
        ),
        "billing_question": (
            "Why two charges? {patient}",
            "Statement {amount}",
            "Account of {patient}",
        ),
        "clinical_note": (
            "Note: {patient}",
            "Consult {specialty} re {patient}",
            "Referral for {patient}",
        ),
        "name_inline": ("About {patient}", "Quick question re: {patient}"),
        "name_greeting": ("Hi {first}", "For {patient}"),
        "name_caps": ("{patient} - records", "RE: {patient}"),
        "name_last_first": ("Chart of {patient}", "{patient} DOB {dob}"),
        "neg_staff": ("Rota and reminders", "Grand rounds {date}", "In memoriam"),
        "neg_provider": ("On-call list {weekday}", "Directory update"),
        "neg_public": ("Celebrity health roundup", "Health headlines"),
        "neg_place": ("Campus notice", "{fund} update"),
        "neg_company": ("Vendor notice", "PO update {company}"),
        "neg_hr_it": ("IT/HR notice", "Job posting"),
        "neg_newsletter": ("The Pulse", "Community bulletin {date}"),
    },
    covers=(
        "Attached, as discussed on the phone - pls confirm receipt.",
        "Pages scanned on the lobby multifunction printer are attached.",
        "See attachment re: {patient}.",
        "Document attached for {patient}, please file in the chart.",
        "Enclosed for your records; reply if pages are missing.",
        "Encrypted zip from {org}; the passcode follows by text.",
    ),
    list_items=(
        "{patient} - {procedure}, {time}",
        "{patient} ({dob}) {test} {value}",
        "{patient}: {diagnosis}, call {phone}",
        "{patient}, {drug} {dose}",
        "{patient} | rm {room} | attending {doctor}",
    ),
    table_layouts=(
        (("Patient", "patient"), ("Time", "time"), ("Procedure", "procedure"), ("Room", "room")),
        (("Name", "patient"), ("DOB", "dob"), ("Test", "test"), ("Result", "value")),
        (("Pt", "patient"), ("Dx", "diagnosis"), ("Attending", "doctor")),
        (("Patient name", "patient"), ("Medication", "drug"), ("Dose", "dose"), ("Due", "date")),
        (("Paciente", "patient"), ("Fecha", "date"), ("Hora", "time")),
        (("Member", "patient"), ("Service date", "date"), ("Billed", "amount")),
    ),
    compound_surnames=(
        "Dela Paz",
        "Santos-Macaraeg",
        "Villanueva-Reyes",
        "Ochoa de Anda",
        "Nascimento-Freitas",
        "Tran-Whitfield",
        "Okonkwo-Baines",
        "Delos Santos",
        "Ruiz-Tagle",
        "Saint-Hilaire",
        "Van Tassel-Ibarra",
        "Mendes da Rocha",
    ),
    apostrophe_surnames=(
        "D'Arcangelo",
        "O'Grady",
        "M'Bala",
        "D'Ambrosio",
        "O'Halloran",
        "Dell'Acqua",
        "Ma'ake",
        "Ka'ahanui",
        "O'Flynn",
        "D'Costa",
    ),
    common_word_first=(
        "Treasure",
        "Journey",
        "Harmony",
        "Royal",
        "Rain",
        "Forrest",
        "Cherish",
        "Ivory",
        "Miracle",
        "Lucky",
        "Clay",
        "Bud",
    ),
    common_word_last=(
        "Pepper",
        "Stone",
        "Glass",
        "Sexton",
        "Gross",
        "Ledger",
        "Carrier",
        "Hale",
        "Chapel",
        "Waters",
        "Doctor",
        "Plum",
    ),
    public_figures=(
        "Serena Okafor-Lind",
        "Alma Treviño",
        "Dwayne Kessler",
        "Imelda Raskin",
        "Tomás Ferreyra",
        "Harriet Oyelaran",
        "Paulo Estrela",
        "Lani Kahale",
        "Bernard Quist",
        "Celeste Varga",
        "Dorothy Ambler",
        "Marcus Delacroix-Hill",
    ),
    companies=(
        "Whitaker & Boone Medical Supply",
        "Osei Linen Services",
        "Harrow Biologics",
        "Castellano Pharma",
        "Pemberton Diagnostics",
        "Lindqvist Imaging",
        "Agbaje Courier Co.",
        "Fairweather Health Staffing",
        "Montgomery Ward Scrubs",
        "Nakagawa Infusion Partners",
        "Brennan Biomedical",
        "Duarte & Sons Elevators",
    ),
    streets=(
        "Jovita Idar Lane",
        "Quang Trung Road",
        "Mary Seacole Lane",
        "Roberto Clemente Boulevard",
        "Corazon Aquino Street",
        "Florence Sabin Avenue",
        "Le Loi Street",
        "Tubman Way",
        "Cuthbert Road",
        "Gwendolyn Brooks Court",
    ),
    buildings=(
        "Okafor Pavilion",
        "Hattie Delgado Tower",
        "Nguyen Family Wing",
        "Abernathy Cancer Center",
        "Rosalind Franklin Hall",
        "Pruitt Ambulatory Building",
        "Esperanza Lopez Atrium",
        "Whitcombe Rehabilitation House",
        "Ivan Petrenko Laboratory",
        "Mendelsohn Surgical Suites",
    ),
    funds=(
        "Ana Belén Ortiz Memorial Fund",
        "Clifford Haskins Nursing Endowment",
        "Thuy Pham Scholarship",
        "Eleanor Ruddock Hospice Fund",
        "Joseph Adeyemi Research Fellowship",
        "Marisol Vega Children's Fund",
        "Harold Birch Chaplaincy Fund",
        "Teodoro Ramos Community Fund",
    ),
    name_locales=NAME_LOCALES,
    name_locale_share=NAME_LOCALE_SHARE,
)
