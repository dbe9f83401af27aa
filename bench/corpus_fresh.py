"""Fresh phrasings of the round-two corpus families (bench/corpus.py): the final judge.

DO NOT READ THIS FILE WHEN TUNING A DETECTOR, and do not run the fresh split while
tuning one. These sentences and name pools were written apart from both other
books (bench/corpus.py's TUNE_BOOK and bench/corpus_heldout.py's HELDOUT_BOOK),
from the senders' side: portals, pharmacies, schedulers, billing offices, nurses,
dictating doctors, care coordinators and family members. The held-out split has
been looked at in aggregate while tuning; this one has not, and its figures mean
something only while that stays true. No sentence here is a word swap of another
book's (tests/test_corpus.py checks that no template is shared, that templates
differ in their words, and that no name pool entry is shared).
"""

from __future__ import annotations

from corpus import Phrasebook

FRESH_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "{org}: {first}, appt w/ {doctor} {date} {time}. Txt Y to keep, N to cancel. "
            "Msg&data rates may apply.",
            "Good morning {first}!\nJust a heads-up that {doctor} has you down for a "
            "{procedure} on {weekday}, {date} at {time}. Nothing to eat or drink after "
            "midnight the night before.\nWarmly,\nyour friends on the {org} reception crew",
            "Voicemail transcript (automatic)\n\"Hi, this message is for {patient}. It's "
            "{staff_first} calling from {org} about your {procedure} with {colleague} on "
            '{date}. Give us a ring back at {phone}. Thanks, bye."',
            "---------- Forwarded message ----------\nFrom: Central Scheduling\nSubject: slot "
            "held\n\n{patient} is set for {time} on {date} in the {specialty} clinic "
            "({doctor}). Parking validation is at the kiosk by the lifts.",
            "We have not seen {patient} in over a year. A {procedure} is now due, and "
            "{doctor} has kept {date} at {time} open for it. To claim that slot, phone "
            "{phone}.",
            "Tomorrow's {time} ({patient}, {procedure}) with {doctor} is confirmed; the "
            "interpreter has been booked as well.",
            "Your check-in window opens 3 days ahead.\nVisit type: {procedure}\nWhen: "
            "{date} {time}\nClinician: {provider}\nAdd to calendar | Get directions\nThis "
            "notice was sent to {patient} at the address on file.",
            "Hola {first}, le recordamos su cita con {doctor} el {date} a las {time} en "
            "{org}. Para cambiarla llame al {phone}.",
            "Telehealth link for {patient}\nJoin at {time} on {date}; {doctor} will let you in "
            "from the virtual waiting room. Test your camera beforehand.",
            "fyi the appt got moved -- {patient} now sees {doctor} {weekday} {date} at {time}, "
            "not Thursday. Can you still do the drive?",
            "Booked - see below\n\n| Patient | {patient} |\n| Provider | {provider} |\n| Date | "
            "{date}, {time} |\n| Where | {org}, room {room} |",
        ),
        "refill_reminder": (
            "{pharmacy}: Rx for {patient} ({drug} {dose}) is filled and waiting at the "
            "counter. Pick up within 10 days or it goes back to stock.",
            "{first} -- your {drug} runs out around {date}. Reply REFILL and we'll send "
            "the request to {doctor} for you.",
            "REFILL AUTHORIZATION REQUEST\nTo: {doctor}, {org}\nFor: {patient}, born "
            "{dob}\nMedication: {drug} {dose}\nLast filled: {date}\nPlease sign and fax "
            "back; no refills remain on file.",
            "Mail-order parcel dispatched for {patient}.\nWhat's inside: {drug}, "
            "90-day supply\nExpected delivery: {date}\nQuestions about this order? {phone}",
            "We tried to fill {patient}'s {drug} but the insurer wants a prior "
            "authorization first. {doctor} has been asked to send it over and we'll text "
            "when it clears.",
            "Auto-refill is switched on for {drug} {dose}. {first}, nothing to do unless "
            "your dose changed at the last visit with {doctor}.",
            "hi its {staff_first} at the drive-thru window, {patient} left their {drug} "
            "here yesterday, bag is behind the register whenever they can swing by",
            "Medication sync: starting {date}, all of {patient}'s refills ({drug} among "
            "them) will be ready on the same day each month at {pharmacy}.",
            "Pharmacy Notification: the prescription for {drug} written for {patient} by {doctor} "
            "could not be filled as written. Please contact the pharmacy at {phone}.",
            "Delivery driver note: {drug} for {patient} left with the building concierge, {date}, "
            "signature on file.",
            "Rx transfer request\nFrom: {pharmacy}\nPatient: {patient} (DOB {dob})\nDrug: {drug} "
            "{dose}\nPrescriber: {provider}",
        ),
        "result_notice": (
            "{first}, a new result is posted to your chart.\nTest: {test}\nCollected: "
            "{date}\nReviewed by: {doctor}\nSign in to see the values and any comments.",
            "Hello {first},\nGood news: your {test} came back at {value}, right where we "
            "want it. Keep taking the {drug} as you have been and I'll see you in three "
            "months.\n{provider}",
            "Tried to reach {patient} twice today about an abnormal {test} ({value}) drawn "
            "{date}. Left a message asking for a call back at {phone}. Flag me if they "
            "ring in.",
            "Pathology from the {procedure} on {date} for {patient} is final. {doctor} "
            "would rather go over it in person, so the clinic will call to set a time.",
            "{date}\n\n{patient}\n\nRe: your recent laboratory work\n\nThe {test} "
            "ordered by {doctor} has been reviewed. Your result, {value}, is consistent "
            "with your known {diagnosis}, and no change to treatment is needed at this "
            "time.\n\nSincerely,\n{provider}\n{org}",
            "Imaging read is back on {patient}: no acute findings. Copy sent to {colleague}.",
            "Screening outcome for {patient}: the {test} was within normal limits. The "
            "next one falls due a year from {date}.",
            'You have a new message from {doctor}.\n"{first}, the {test} from {date} looks fine. '
            'No need for a follow-up call."\nTo reply, sign in to your patient account.',
            "CRITICAL VALUE called to {doctor} at {time}: {test} {value} on {patient}, read back "
            "and confirmed.",
            "results for {patient} are attached, {test} flagged high, pls review before {weekday}",
        ),
        "care_handoff": (
            "S: {patient}, bed {room}, admitted with {diagnosis}\nB: seen by {doctor} on "
            "{date}; on {drug} {dose}\nA: stable overnight, {test} {value}\nR: recheck "
            "labs in AM, page {colleague} if worse",
            "Handing off {patient} to you for the weekend. Main issue is the {diagnosis}; "
            "{doctor} wants the {drug} held until the {test} is repeated.",
            "rm {room} - {patient} - POD1 s/p {procedure} - pain ctrl ok - ambulating - "
            "d/c likely {weekday}",
            "Transfer summary\nWe are sending {patient} (DOB {dob}) to your unit from "
            "{org}. Reason: {diagnosis}. Last dose of {drug} went in at {time}. Family "
            "is aware.",
            "Hi {staff_first}, I'm taking over care coordination for {patient} next week. "
            "Could you forward the notes from the {date} home visit? The {diagnosis} has "
            "been harder to manage since the move.",
            "Night float to day team: keep an eye on {patient} in {room}; spiked a fever "
            "at {time}, cultures sent, {colleague} aware.",
            "Dear {colleague},\nYour patient {patient} went home from {org} today after "
            "treatment for {diagnosis}. Please see them within 7 days. Discharge "
            "medicines include {drug} {dose}.\n{provider}",
            "I-PASS\nIllness severity: watcher\nPatient summary: {patient}, {diagnosis}, on "
            "{drug}\nAction list: f/u {test}, consult {colleague}\nSituation awareness: family "
            "visiting at {time}",
            "To the SNF team: {patient} arrives by ambulance around {time}. Wound care per the "
            "attached orders; next {procedure} review with {doctor} on {date}.",
            "{patient} (bed {room}) -> step-down. Handoff given to {staff_first} at {time}.",
        ),
        "billing_question": (
            "Hello, my name is {patient} and I got a bill for {amount} for a {procedure} "
            "on {date}. My insurance said it was covered. Can someone look into this?",
            "I'm writing on behalf of {patient}, for whom I hold power of attorney. The "
            "statement for the visit "
            "with {doctor} on {date} shows {amount} due, but we already paid at check-in.",
            "Statement inquiry\nAccount holder: {patient}\nService: {procedure}, {date}\n"
            "Balance: {amount}\nNote: disputes the charge; sent to coding for review.",
            "{first}, we received your payment of {amount}, thank you. What remains from "
            "your {specialty} visit will be billed to your secondary insurance.",
            "Our records show an unpaid balance of {amount} for services provided to "
            "{patient} by {org}. Payment plans are available; call {phone} to set one up.",
            "Good faith estimate for {patient}: {procedure} with {doctor}, expected cost "
            "{amount} before insurance.",
            "Could you resend the itemized bill for {patient}? The insurer needs the codes "
            "for the {procedure} on {date} before they'll reprocess it.",
            "Re: account for {patient}\nThe explanation of benefits lists the {procedure} as out "
            "of network even though {doctor} is on the plan's list. We are appealing; nothing to "
            "pay until that is decided.",
            "my partner {patient} was charged twice for the same {date} visit, {amount} each time, "
            "please refund one",
            "Financial assistance application received for {patient}. Still missing: last two pay "
            "stubs. The {specialty} balance of {amount} is on hold meanwhile.",
        ),
        "clinical_note": (
            "Dictated but not read.\n{patient} is a pleasant person seen today in "
            "follow-up for {diagnosis}. Reports feeling better on {drug}. Exam "
            "unremarkable. Plan: continue current dose, repeat {test} before next visit.",
            "Phone note {date} {time}: {patient} called reporting worse symptoms since "
            "{weekday}. Advised urgent care. Routed to {doctor}.",
            "CC: f/u {diagnosis}\n{first} here w/ spouse. Adherent to {drug}. {test} "
            "{value}. A/P: stable, RTC 3 mo.",
            "Procedure: {procedure}\nPerformed by {doctor} on {date}. {patient} tolerated "
            "it well with no complications and went home in stable condition.",
            "Home visit. Saw {patient} at the kitchen table; wound clean and dry. Went "
            "over the {drug} schedule with the daughter. Next visit {weekday}.",
            "{patient} no-showed the {date} follow-up for {diagnosis}. Letter mailed, "
            "second attempt by phone tomorrow.",
            "Session note: {first} described better sleep this week and fewer panic "
            "episodes. Continue {drug}; next session {date}.",
            "SUBJECTIVE: {patient} presents for {diagnosis}. Pain 4/10.\nOBJECTIVE: afebrile, "
            "{test} {value}.\nASSESSMENT/PLAN: start {drug} {dose}; return in two weeks.",
            "Addendum {date}: spoke again with {patient}'s daughter; they will bring the home "
            "glucose log to the next visit with {doctor}.",
            "Pre-op checklist complete for {patient}: consent signed, NPO since midnight, "
            "{procedure} scheduled {time}.",
        ),
        "name_line_start": (
            "{patient}: your {procedure} is on {date}, please arrive by {time}.",
            "{patient}, we have your {test} back and {doctor} asked us to call.",
            "{patient} - {drug} {dose} ready at {pharmacy}.",
            "{first}: quick reminder to fast after midnight before the labs {doctor} ordered.",
            "{patient} phoned; wants {doctor} to know the {drug} is upsetting their stomach.",
            "{patient}, {date}: {diagnosis}; follow-up booked with {colleague}.",
            "{patient}; {test} {value}; repeat in 6 wks per {doctor}",
            "{first}, your ride to the {procedure} is booked for {time}.",
            "{patient} -> {colleague}: referral for {diagnosis} faxed today.",
        ),
        "name_inline": (
            "Our records show that {patient} was treated here for {diagnosis} in the spring.",
            "Could you check whether {patient} still needs the {procedure} on {date}, or "
            "has {doctor} cancelled it?",
            "The lab rang to say the {test} drawn on {patient} was hemolyzed and must be redrawn.",
            "This morning I spoke with {patient} about starting {drug}, and they agreed "
            "to try it for a month.",
            "I'm forwarding the referral so {colleague} can fit in {patient} sooner for "
            "the {diagnosis}.",
            "As discussed, {first} will stop the {drug} two days before the {procedure}.",
            "Thanks for squeezing in {patient} ({dob}) yesterday; the {test} you ordered "
            "is pending.",
            "The {procedure} consent is signed and scanned, and transport is arranged "
            "for {patient}.",
            "{specialty} has an opening on {date} that would suit {patient}, given the "
            "{diagnosis}.",
            "Our {weekday} infusion (for {patient}) has to move because the {drug} is "
            "back-ordered.",
            "The insurer approved {patient}'s {procedure} this afternoon.",
            "Please fax the last three notes on {patient} to {colleague}.",
        ),
        "name_greeting": (
            "Hi {patient},\n{org} here with a nudge: {procedure}, {date}, {time}. Reply "
            "STOP to opt out.",
            "Hello {first}!\nYour {test} results are in. {doctor} left you a note in the portal.",
            "Evening, {patient}!\nThe pharmacy counter has your {drug} waiting.",
            "Hey {first}, it's {staff_first} from {doctor}'s office. Just confirming "
            "{weekday} at {time}.",
            "Greetings {patient},\nWelcome to {org}. Your first visit with {provider} is "
            "set for {date}.",
            "Morning {first} -\nattached are the after-visit instructions for your "
            "{diagnosis}. Ring us with any questions.",
            "{first},\nthanks for coming in on {date}. Keep the {drug} going and we'll "
            "recheck in a month.\n{doctor}",
            "Hi there {first},\njust following up on your {date} visit. How is the {drug} treating "
            "you?",
            "To {patient}:\nThe results of your {test} are enclosed. Call {phone} with any "
            "questions.",
            "Hiya {first}! Your {procedure} paperwork is ready to sign online.",
        ),
        "name_list": (
            "Tomorrow's {specialty} schedule for {doctor}:\n{items}\nCharts pulled and "
            "prepped by {time}, thanks.",
            "Still waiting on a call back:\n{items}",
            "Flu clinic sign-ups, {date}:\n{items}\nBring the consent forms.",
            "Refills for {doctor} to sign before end of day\n{items}",
            "Discharges planned for {weekday}:\n{items}\nCase management please confirm transport.",
            "No-shows this week\n{items}\nSecond letters go out {weekday}.",
            "Prior auths expiring before {date}:\n{items}",
        ),
        "name_table": (
            "Clinic roster for {date}\n{table}\nQuestions to {staff}.",
            "Unresulted orders by patient\n{table}",
            "Pulled from the EHR report you wanted:\n{table}\nDelete it once you are done.",
            "Week of {date} - infusion chair assignments\n{table}",
            "Bad-debt review, {specialty}\n{table}\nSend disputes to {staff_first}.",
            "{table}\nSource: scheduling system, pulled {date} {time}.",
            "Per your request, the dialysis chair list:\n{table}",
        ),
        "name_shape": (
            "RE: {patient}\nDOB {dob}\n\n{doctor} reviewed the {test} and wants a repeat "
            "in two weeks.",
            "Pt name: {patient}  |  Visit: {date}  |  Reason: {diagnosis}",
            "We are referring {patient} to {colleague} for evaluation of {diagnosis}.",
            "Chart prep\n{patient}\n{specialty} f/u with {doctor}, {date}\nMeds: {drug} {dose}",
            "Message from the answering service: {patient} called at {time} about side "
            "effects from {drug}. Callback {phone}.",
            "ADMIT {date} -- {patient} -- {diagnosis} -- attending {doctor}",
            "Forwarding for your records; {patient} signed the consent for the {procedure} today.",
            "Insurance card on file does not match. Name on the card reads {patient}; "
            "please verify before the {procedure} on {date}.",
            "Attn records: please release the {procedure} report for {patient} to {colleague}.",
            "Two identifiers checked at the bedside: {patient} / {dob}.",
            "{patient} ({specialty}) was admitted under {doctor} overnight.",
            "Callback list -> {patient} re {test}",
        ),
        "neg_staff": (
            "Team,\n{doctor} will cover the {specialty} clinic on {weekday} while "
            "{colleague} is at the conference. The {procedure} skills lab moves to "
            "{time}.\n{staff}",
            "Grand rounds this {weekday} at {time} in the {building}: {provider} on new "
            "approaches to {diagnosis}. Lunch provided.",
            "{staff_first}, can you swap call with me on {date}? I'll take your "
            "{weekday} shift.\n- {provider}",
            "Congratulations to {staff} on passing the {specialty} boards! Cake in the "
            "break room at {time}.",
            "Huddle notes: the {test} analyzer is down until {weekday}, so send samples "
            "to the main lab. {doctor} asks that we stop stocking {drug} samples in room "
            "{room}.",
            "Please welcome {staff}, our new nurse manager, who joins us from {org}. "
            "Drop by room {room} to say hello.",
            "Farewell drinks for {doctor} after clinic on {weekday}; {staff_first} is collecting "
            "for the gift.",
            "Patient safety committee: {staff} will present the quarterly falls data on {date}. No "
            "patient identifiers in slides, please.",
            "Dear {staff_first},\nthanks for covering the {procedure} list on {weekday}. "
            "{colleague} said it ran smoothly.",
            "OR staffing, {date}\nSurgeon: {doctor}\nAnesthesia: {colleague}\nCirculator: "
            "{staff}\nScrub: float pool, to be confirmed",
            "Hi {staff_first},\nlunch with {doctor} and the {specialty} fellows is on {weekday} "
            "at {time}. Can you order sandwiches for twelve?",
        ),
        "neg_provider": (
            "On call this week\nMon-Tue: {doctor}\nWed-Thu: {colleague}\nFri-Sun: "
            "{staff}, NP\nAnswering service: {phone}",
            "Got it, thanks for the heads-up on the schedule.\n\n{provider}\n{specialty}"
            "\n{org}\nDirect line {phone}\nThis email may contain confidential "
            "information. If you received it in error, delete it.",
            "Referral directory update\n{specialty}: {provider}, accepting new patients\n"
            "Pain management: {colleague}, waitlist about six weeks\nFax referrals to "
            "{phone}",
            "Referring physician: {provider}\nCredentialing needs the practice address "
            "confirmed; our file still lists {street}.",
            "MEDICAL STAFF DIRECTORY - {specialty}\nHOLLOWAY, PRIYA MD ....... ext 4410\n"
            "DUPREE-NAKAMURA, CALVIN DO ....... ext 4413\n{provider} ....... ext 4417",
            "{doctor} and {colleague} now offer {procedure} at the {building} location "
            "on {weekday}s.",
            "Physician finder - {specialty}\n{provider} (accepting), {colleague} (not accepting), "
            "{staff}, MD (locum until {date})",
            "Will be 10 min late to the M&M conference.\n\n--\n{provider}\nAttending, "
            "{specialty}\nPager {phone}\nSent from my iPhone",
            "Prescriber of record for {drug} samples this month: {provider}. DEA renewal due "
            "{date}.",
            "{provider} | {specialty} | {org} | tel {phone}\nAdmitting privileges approved {date}.",
        ),
        "neg_public": (
            "Health news roundup: {public} opened up about living with {diagnosis} in an "
            "interview this week, and advocates say screening calls are already up.",
            "A chapter of {public}'s memoir about caring for a parent after a "
            "{procedure} struck a chord with our caregiver support group.",
            "Book club pick for {weekday}: the biography of {public}. Snacks by {staff_first}.",
            "Did you see {public} is hosting the charity run for {diagnosis} research? "
            "A group from {org} is signing up; talk to {staff}.",
            "The lobby screens will show the {public} documentary on {diagnosis} on "
            "{date} at {time}. All staff welcome.",
            "Reading list: {public} writes about {diagnosis} awareness in this week's magazine.",
            "The {public} foundation grant for {diagnosis} outreach closes {date}. Draft to "
            "{staff} by {weekday}.",
            "{public} toured the {specialty} ward on {weekday} and signed autographs for the "
            "night shift.",
        ),
        "neg_place": (
            "Parking on {street} is closed {weekday} for repaving; infusion visitors "
            "should use the garage behind the {building}.",
            "The {fund} has awarded a new grant to widen {diagnosis} screening across the "
            "county. Grant reports are due {date}.",
            "Directions: take {street} north, turn left after the gas station, and the "
            "{specialty} clinic is on the second floor of the {building}.",
            "Facilities: the elevators in the {building} will be serviced {date}. Use "
            "the {street} entrance meanwhile.",
            "Gifts to the {fund} this quarter paid for a new {procedure} suite. Thank you, donors!",
            "The shuttle between the {building} and {street} now runs every 15 minutes "
            "from {time}.",
            "Clinic moving! From {date}, find the {specialty} team in the {building}, across "
            "{street} from the old site.",
            "Scholarship deadline: the {fund} takes nursing applications until {date}.",
        ),
        "neg_company": (
            "A rep from {company} is coming {weekday} to demo the new {procedure} kit. "
            "Lunch at {time} in room {room}.",
            "{company} has recalled two lots of {drug}; pharmacy is pulling stock. No "
            "action needed by clinic staff.",
            "Invoice from {company} for {amount} is approved; forward to accounts payable.",
            "Our benefits carrier changes to {company} on {date}. Open enrollment "
            "sessions run all week.",
            "Quarterly earnings: {company} beat estimates on strong sales of its "
            "{diagnosis} portfolio, analysts said.",
            "Vendor contract with {company} renewed through next year. Contact: {staff}.",
            "{company} webinar on {diagnosis} therapies, {weekday} at {time}. CME credit "
            "available.",
            "Please stop forwarding chain emails about {company} stock. - IT",
        ),
        "neg_hr_it": (
            "{staff} - new ID badge printed; ready for pickup from the {building} security desk.",
            "IT ticket 4471 assigned to {staff}: scanner in room {room} not sending to "
            "the EHR. Priority normal.",
            "Hi {staff_first},\nyour PTO request for {date} was approved by {doctor}. "
            "Enjoy the break!",
            "HIPAA refresher: {staff} has completed the module. Everyone else, please "
            "finish by {date}.",
            "Password reset for {staff} done at {time}. If you did not ask for this, "
            "call the help desk at {phone}.",
            "Payroll: {staff_first}'s direct deposit change takes effect on {date}.",
            "Exit checklist for {staff}: return laptop, badge and pager to HR on {weekday}.",
            "Interview schedule for {staff}: {date} at {time} with {doctor} and the nurse "
            "managers, {building} room {room}.",
            "Reminder: {staff}'s laptop is due for its encryption check; bring it to IT by "
            "{weekday}.",
            "Facilities request 20391: the sink in exam room {room} leaks. Reported by "
            "{staff_first}.",
        ),
        "neg_newsletter": (
            "This month in Wellness News\n- {provider} on managing {diagnosis} through "
            "the holidays\n- Ask the pharmacist: what to know about {drug}\n- Staff "
            "spotlight: {staff}",
            "Dear neighbors,\n{org} invites you to a free talk by {doctor} on {date} at "
            "{time}: Living well with {diagnosis}. Register at the front desk.",
            "Inside this edition: {colleague} joins our {specialty} team and will offer "
            "{procedure} starting next month.",
            "Tip of the week from {doctor}: if you take {drug}, ask about checking your "
            "{test} once a year.",
            "Volunteer corner: {staff} has logged 500 hours at the {building} gift shop.",
            "Meet the team: {provider} grew up near {street} and now leads our {specialty} "
            "service. Outside work they coach youth soccer.",
            "Research news: {colleague} received the {fund} award for work on {diagnosis}.",
            "From the CMO's desk: a word of thanks to {staff} and {doctor}, whose {procedure} "
            "pathway cut waiting times in half this year.",
        ),
    },
    subjects={
        "appt_reminder": (
            "Upcoming visit - {date}",
            "Fwd: slot for {patient}",
            "{first}, still good for {weekday}?",
            "Appointment with {doctor}",
            "Reminder from {org}",
        ),
        "refill_reminder": (
            "Pharmacy update",
            "Re: {patient} refill",
            "Your {drug}",
            "Message from {pharmacy}",
        ),
        "result_notice": (
            "Your chart was updated",
            "Re: {patient} - results",
            "Lab work, {date}",
            "{test}",
        ),
        "care_handoff": ("Sign-out", "Re: {patient}", "Handoff {weekday}", "Bed {room}"),
        "billing_question": (
            "Billing",
            "Account: {patient}",
            "Statement question",
            "Re: invoice for services",
        ),
        "clinical_note": (
            "Dictation",
            "Chart note {date}",
            "Progress note: {patient}",
            "Note - {diagnosis}",
        ),
        "name_line_start": ("Re: {patient}", "quick one", "{first}", "RE: RE: {procedure}"),
        "name_inline": ("Following up", "Re: {procedure}", "About {patient}"),
        "name_greeting": ("Hello from {org}", "Checking in", "For {first}", "A note for you"),
        "name_list": ("Today's run sheet", "Worklist {date}", "Call-back queue"),
        "name_table": ("Export", "Roster {date}", "Spreadsheet as promised"),
        "neg_staff": ("Clinic staff", "From {staff}", "Team update", "Re: {weekday}"),
        "neg_provider": ("Directory", "Provider list - {specialty}", "Re: schedule", "{provider}"),
        "neg_public": ("In the news", "{public}", "Worth a read", "Staff social"),
        "neg_place": ("Facilities notice", "{building}", "Campus update", "{fund}"),
        "neg_company": ("Vendor update", "{company}", "From purchasing", "Re: {company}"),
        "neg_hr_it": ("HR", "IT service desk", "Re: {staff}", "Action needed"),
        "neg_newsletter": (
            "Wellness News",
            "Newsletter - {weekday} edition",
            "Community health bulletin",
        ),
        "default": ("Fwd:", "Heads up", "See below", "(no subject)"),
    },
    covers=(
        "Scan from the front desk attached.",
        "Attachment: visit paperwork for {patient}",
        "Document enclosed, as requested on the phone.",
        "Printing this for {patient}'s chart; see the file.",
        "PDF/Word copy attached, nothing else in this email.",
    ),
    list_items=(
        "{patient} - {procedure} at {time}",
        "{patient} ({dob}): {diagnosis}",
        "{patient}, {drug} {dose}",
        "{patient} -- {test} pending since {date}",
        "{time}  {patient}  {procedure}",
        "call back {patient} re: {drug}",
    ),
    table_layouts=(
        (("Patient", "patient"), ("DOB", "dob"), ("Appt", "date"), ("With", "doctor")),
        (("Member", "patient"), ("Service", "procedure"), ("DOS", "date"), ("Owed", "amount")),
        (("Pt", "patient"), ("Dx", "diagnosis"), ("Bed", "room")),
        (("Full name", "patient"), ("Order", "test"), ("Value", "value")),
        (("Chair", "room"), ("Patient", "patient"), ("Infusion", "drug"), ("Start", "time")),
        (("Name on Rx", "patient"), ("Rx", "drug"), ("Sig", "dose"), ("Prescriber", "doctor")),
    ),
    compound_surnames=(
        "Moreno-Whitfield",
        "van der Linde",
        "De Luca",
        "Al-Khatib",
        "Ibáñez-Soto",
        "Lloyd-Pryce",
        "von Hagen",
        "du Plessis",
        "Castillo-Reyes",
        "Nakamura-Holt",
        "de Jesus",
        "St. Clair",
        "Mac an tSaoir",
    ),
    apostrophe_surnames=(
        "O'Donnell",
        "D'Alessandro",
        "O'Rourke",
        "Dall'Acqua",
        "O'Toole",
        "D'Onofrio",
        "O'Keefe",
        "L'Heureux",
    ),
    common_word_first=(
        "Crystal",
        "Amber",
        "Heather",
        "Autumn",
        "Chance",
        "Misty",
        "Ivy",
        "Hunter",
        "Sterling",
        "Melody",
        "Destiny",
        "Rusty",
    ),
    common_word_last=(
        "Frost",
        "Sharp",
        "Best",
        "Day",
        "Hunt",
        "Strong",
        "Cash",
        "Law",
        "Post",
        "Small",
        "Patient",
    ),
    public_figures=(
        "Magic Johnson",
        "Michael J. Fox",
        "Angelina Jolie",
        "Selena Gomez",
        "Christopher Reeve",
        "Katie Couric",
        "Ruth Bader Ginsburg",
        "Lou Gehrig",
    ),
    companies=(
        "Becton Dickinson",
        "Bristol Myers Squibb",
        "Smith & Nephew",
        "Zimmer Biomet",
        "Henry Schein",
        "Owens & Minor",
        "McKesson",
        "Kaiser Permanente",
    ),
    streets=(
        "Sojourner Truth Way",
        "Rosa Parks Boulevard",
        "Kennedy Drive",
        "Jackson Street",
        "Clara Barton Lane",
        "Ellis Road",
    ),
    buildings=(
        "Holloway Research Center",
        "Marguerite Chen Wing",
        "Dunbar Hall",
        "Whitaker Cancer Pavilion",
        "Okafor Learning Center",
    ),
    funds=(
        "Dorothy Kim Caregiver Fund",
        "Hartman Family Trust",
        "Ruiz Children's Health Fund",
        "Theodore Nash Memorial Fund",
    ),
)
