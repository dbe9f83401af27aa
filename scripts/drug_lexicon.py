#!/usr/bin/env python3
"""Write gateway/inspect/detect/data/drugs_reference.txt from a drug dictionary.

The source is the dictionary shipped by the PyPI package
drug-named-entity-recognition (Fast Data Science, MIT licence: DrugBank, MeSH,
MedlinePlus and Wikipedia names). Only the medicines MedlinePlus describes for
patients are taken (about 1,500), with their generic names and synonyms, and
their brand names of at least BRAND_MIN_LENGTH letters. Names that are everyday
English words (wordfreq's Zipf frequency at or over the limits below) or US
census given names or surnames are left out ("Focus", "Max"), and so are names
rarer than MIN_ZIPF in general English text.

Run by hand when the dictionary is updated, then review the diff:
    .venv/bin/pip install drug-named-entity-recognition wordfreq
    .venv/bin/python scripts/drug_lexicon.py
Neither package is needed at run time: the detector reads the text file.
"""

from __future__ import annotations

import bz2
import pickle
import re
import sys
from importlib import metadata, resources
from pathlib import Path

from wordfreq import zipf_frequency

from gateway.inspect.detect.namedata import name_data

OUT = Path(__file__).resolve().parent.parent / "gateway/inspect/detect/data/drugs_reference.txt"
# Names seen in general English text at least this often (wordfreq's Zipf scale: 1 is
# once per 100 million words): the medicines people write about, not the dictionary's
# thousands of foreign and salt-form synonyms, which cost compile time for nothing.
MIN_ZIPF = 1.0
GENERIC_MAX_ZIPF = 3.3  # "insulin" 3.6 is in drugs.txt already; "codeine" 3.0 passes
BRAND_MAX_ZIPF = 2.8
BRAND_MIN_LENGTH = 6
MIN_LENGTH = 5
# Letters, spaces, hyphens and apostrophes only: no codes ("csf-2", "lb-46", "t-dm1");
# every word of three letters or more ("ara c", "nac al" read as words of a sentence).
_SHAPE = re.compile(r"[a-z]{3,}(?:['-]?[a-z]+)*(?:[ -][a-z]{3,}(?:['-]?[a-z]+)*)*")
# Synonyms in the dictionary that are English words or phrases, not medicine names.
NOT_DRUGS = frozenset({"generics", "modus", "capsules and granules", "fallback solo"})


def _dictionary() -> dict[str, dict[str, object]]:
    data = resources.files("drug_named_entity_recognition").joinpath("drug_ner_dictionary.pkl.bz2")
    with data.open("rb") as raw, bz2.open(raw) as stream:
        return pickle.load(stream)  # the installed package's own data file, trusted as its code


def main() -> int:
    d = _dictionary()
    canon = d["drug_canonical_to_data"]
    patient_drugs = {c for c, info in canon.items() if info.get("medline_plus_id")}
    people = name_data()
    kept: set[str] = set()
    for variant, canonicals in d["drug_variant_to_canonical"].items():
        if not any(c in patient_drugs for c in canonicals):
            continue
        term = " ".join(variant.lower().split())
        if (
            len(term) < MIN_LENGTH
            or not _SHAPE.fullmatch(term)
            or term.count(" ") > 3
            or term in NOT_DRUGS
        ):
            continue
        brand = bool(d["drug_variant_to_variant_data"].get(variant, {}).get("is_brand"))
        if brand and len(term) < BRAND_MIN_LENGTH:
            continue
        limit = BRAND_MAX_ZIPF if brand else GENERIC_MAX_ZIPF
        if not MIN_ZIPF <= zipf_frequency(term, "en") < limit:
            continue
        key = term.replace("'", "").replace("-", "").upper()
        if " " not in term and (key in people.given or key in people.surnames):
            continue
        kept.add(term)
    version = metadata.version("drug-named-entity-recognition")
    header = [
        "# Medicines MedlinePlus describes for patients: generic names, synonyms and brands,",
        f"# from drug-named-entity-recognition {version} (Fast Data Science, MIT licence).",
        "# Written by scripts/drug_lexicon.py; edit that script, not this file.",
    ]
    OUT.write_text("\n".join([*header, *sorted(kept)]) + "\n", encoding="utf-8")
    print(f"{len(kept)} terms -> {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
