"""Held-out phrasings of the round-two corpus families (bench/corpus.py).

DO NOT READ THIS FILE WHEN TUNING A DETECTOR. These sentences and name pools were
written apart from bench/corpus.py's TUNE_BOOK, to measure how a detector does on
mail it was not fitted to. A detector tuned with them in view makes the held-out
figures worthless. Keep them apart: no sentence here is a word swap of a tuning one
(tests/test_corpus.py checks that no template is shared and that templates differ
in their words).
"""

from __future__ import annotations

from corpus import Phrasebook

HELDOUT_BOOK = Phrasebook(
    templates={
        "appt_reminder": (
            "Booking details\n\nWhen: {date}, {time}\nWho: {patient}\nWith: {doctor}, {org}\n"
            "Running late? Let us know at {phone}.",
            "{first}, we look forward to seeing you for the {procedure} on {date}. Do not eat "
            "after midnight the night before.",
            "Text from {org}: {patient} is due in {specialty} on {date} at {time}. Reply STOP to "
            "opt out.",
            "Just a heads up that {patient} has a slot with {doctor} on {date}. Parking validation "
            "is at reception.",
        ),
        "refill_reminder": (
            "Good news, {first}! The {drug} you asked for can be collected from {pharmacy} today.",
            "{pharmacy} notice\nOrder for {patient}: {drug} {dose}, 30-day supply, awaiting "
            "collection until {date}.",
            "Auto-refill processed for {patient}. {drug} ships in 2 business days.",
            "Our records show {patient} is almost out of {drug}. Shall we ask {doctor} for a "
            "renewal?",
        ),
        "result_notice": (
            "Lab update: the {test} drawn on {date} for {patient} is back, and {doctor} left a "
            "comment.",
            "{first}, good news - your {procedure} showed nothing of concern.",
            "A new document has been added to the chart of {patient}: {test} ({value}).",
            "Could {patient} come in so {doctor} can go over the {procedure} findings in person?",
        ),
        "care_handoff": (
            "Overnight events: {patient} spiked to 38.9 around 2 am; cultures sent, {drug} "
            "continued. Day team please follow up.",
            "Covering for {doctor} today. Rounded on {patient}, who is recovering from "
            "{procedure} and eating well.",
            "Bed 12 / {patient} / {diagnosis} / needs {test} at 6 / family updated",
            "{colleague} - passing {patient} to you. Consult for {diagnosis} placed, awaiting "
            "{specialty} recommendations.",
        ),
        "billing_question": (
            "Spoke to {patient} on the phone; they were charged {amount} for {procedure} and "
            "their plan says it is covered. Can billing review?",
            "{first}, the statement you asked about covers the {test} from {date}. A refund of "
            "{amount} is on its way.",
            "Dispute opened for {patient} - payer denied {procedure} as not medically necessary.",
            "Re: the invoice sent to {patient}\nThe {diagnosis} visit was coded as new patient by "
            "mistake. Please correct and resend.",
        ),
        "clinical_note": (
            "Subjective: {patient} reports more fatigue over two weeks. Assessment: {diagnosis}, "
            "uncontrolled. Plan: increase {drug}.",
            "Had a long conversation with {patient} about the {procedure}. Consent signed.",
            "{patient} arrived ambulatory, vitals stable. History of {diagnosis}. {test}: {value}.",
            "Telehealth visit with {patient}. Tolerating {drug} without nausea. Recheck on {date}.",
        ),
        "name_line_start": (
            "{patient}, the {test} you had on {date} needs repeating.",
            "{patient}: prior authorization for {drug} was approved.",
            "{patient} -- {procedure} moved to {date} at {time}",
            "{patient}; {diagnosis}; stable; see again in 6 weeks",
        ),
        "name_inline": (
            "Yesterday {patient} told the nurse that the {drug} makes them dizzy.",
            "Following the {procedure}, {patient} went home the same afternoon.",
            "Our pharmacist reviewed the list for {patient} and flagged {drug}.",
            "It was a pleasure caring for {patient} during the admission for {diagnosis}.",
        ),
        "name_greeting": (
            "Hello {patient}\n\nWe have your {test} results and {doctor} is happy with them.",
            "Hi {first}!\nYour {drug} is on its way; expect it {date}.",
            "Good evening {patient},\nthe {specialty} team has a cancellation on {date}, would "
            "you like the slot?",
            "Morning {first} - thanks for coming in for the {procedure}. Rest today.",
        ),
        "name_list": (
            "Outstanding lab orders:\n{items}",
            "For {doctor}, to sign before Friday:\n{items}\n(all urgent)",
            "Waitlist, {specialty}:\n{items}\nCall in this order.",
        ),
        "name_table": (
            "{table}\nSent from the scheduling system.",
            "Weekly tracker\n{table}",
            "Below is the list you asked for.\n{table}\nLet me know about changes.",
        ),
        "name_shape": (
            "{patient} / {drug} / refill authorized",
            "Pt {patient} ({dob}) - {test} {value}",
            "{patient}\nProblem: {diagnosis}\nNext step: {procedure}",
            "Chart review - {patient}: {diagnosis}, seen by {doctor} {date}",
        ),
        "neg_staff": (
            "Cake in the break room at 3 for {doctor}'s birthday! Signed, the {specialty} crew.",
            "{doctor} is out until {date}. {colleague} is covering inbox messages.",
            "Parking reminder from {staff}: the west lot is reserved for visitors during "
            "construction.",
        ),
        "neg_provider": (
            "Sincerely,\n{provider}\nMedical Director, {org}\n{phone}",
            "Grand rounds this {weekday}: {doctor} on advances in {specialty}.",
            "Credentialing complete for {provider}; privileges at {org} start {date}.",
        ),
        "neg_public": (
            "Fun fact: {public} once visited our pediatric ward in 2009.",
            "Quote of the week, from {public}: keep going.",
            "The gala raffle prize is a signed photo of {public}.",
        ),
        "neg_place": (
            "Shuttle stops moved to {street}, in front of the {building}.",
            "Donations to the {fund} are tax deductible. Thank you for giving.",
            "Construction noise expected near {street} until {date}.",
        ),
        "neg_company": (
            "Reminder: {company} reps are not allowed on the units without an appointment.",
            "{company} announced quarterly earnings; the stock rose 3%.",
            "The vending machines are now stocked by {company}.",
        ),
        "neg_hr_it": (
            "{staff}, please complete your annual compliance training by {date}.",
            "Ticket 4471 for {staff}: VPN access restored. Reboot if the issue returns.",
            "Welcome aboard, {staff}! Your first-day orientation is at {time} in room {room}.",
            "{staff_first}, your timesheet for last week is missing a signature.",
        ),
        "neg_newsletter": (
            "In this issue: {doctor} on living well with {diagnosis}, plus a recipe for spring.",
            "Q and A with {provider}: what to ask before starting {drug}.",
            "Community health night: {doctor} will answer questions about {procedure}.",
        ),
    },
    subjects={
        "appt_reminder": ("Visit details", "Booked for {date}", "{patient}: your slot"),
        "refill_reminder": ("Ready to collect", "{drug} order", "Pharmacy: {patient}"),
        "result_notice": ("Test update", "Chart update", "{patient} lab"),
        "care_handoff": ("Overnight", "Coverage", "{patient} sign-out"),
        "billing_question": ("Statement query", "Refund", "Dispute {patient}"),
        "clinical_note": ("Encounter", "Telehealth", "Progress {date}"),
        "neg_hr_it": ("Action needed", "Ticket update", "Welcome"),
        "default": ("Heads up", "Info", "Latest", "Notes"),
    },
    covers=(
        "See enclosed.",
        "File enclosed for your records.",
        "Enclosed: paperwork regarding {patient}.",
        "The enclosed concerns {patient}.",
    ),
    list_items=(
        "{patient} ({test})",
        "{patient} needs {procedure}",
        "{time} - {patient} - {diagnosis}",
        "{patient} / {drug}",
    ),
    table_layouts=(
        (("Patient name", "patient"), ("Visit", "date"), ("Reason", "diagnosis")),
        (("Member", "patient"), ("Rx", "drug"), ("Prescriber", "doctor")),
        (("Client", "patient"), ("Slot", "time"), ("Service", "procedure"), ("Room", "room")),
    ),
    compound_surnames=(
        "Fernandez-Ortiz",
        "de los Santos",
        "Van den Heuvel",
        "Hughes-Carter",
        "da Silva",
        "Perez-Gomez",
        "ten Brink",
        "Le Blanc",
        "El-Amin",
        "dos Reis",
    ),
    apostrophe_surnames=("O'Connor", "D'Souza", "O'Hara", "N'Diaye", "D'Arcy", "O'Sullivan"),
    common_word_first=("Faith", "Joy", "Penny", "Summer", "April", "Sandy", "Drew", "Robin"),
    common_word_last=("Young", "Black", "Bell", "Cook", "Little", "Love", "Church", "Page"),
    public_figures=(
        "Michelle Obama",
        "LeBron James",
        "Meryl Streep",
        "Dolly Parton",
        "Sally Ride",
        "Jimmy Carter",
    ),
    companies=(
        "Procter & Gamble",
        "Morgan Stanley",
        "Dean Foods",
        "Marks & Spencer",
        "Baxter International",
        "Ernst & Young",
    ),
    streets=(
        "Cesar Chavez Parkway",
        "Lincoln Road",
        "Hope Street",
        "Bell Avenue",
        "Frederick Douglass Blvd",
    ),
    buildings=("Harrison Tower", "Florence Nightingale Hall", "Kellogg Center", "Chen Atrium"),
    funds=("Patel Foundation", "Johnson Heart Fund", "Eleanor Brooks Endowment"),
)
