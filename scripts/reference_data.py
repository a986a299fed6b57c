#!/usr/bin/env python3
"""Writes reference-data/drug_codes.csv and reference-data/sites.csv (deterministic; committed).

drug_codes.csv: curated rows are real WHO ATC level-5 codes with their INN (generic) names, written
from public knowledge of the classification (a selection, not the WHO index). To give the table the
volume of a real dictionary, each class with a recognisable INN stem also gets synthetic entries,
coded 60-99 within the class and named from the stem (e.g. "valomipril" under C09AA): they are
NOT real medicines and are marked `synthetic` in the `origin` column.
sites.csv: fictional trial sites, including the demo's SITE-BOS-01 and SITE-LYN-02.
"""
import csv
import pathlib
import random

ROOT = pathlib.Path(__file__).resolve().parent.parent / "reference-data"

# class code, class name, INN stem for synthetic entries (or None), curated (level-5 suffix, name)
CLASSES = [
    ("A02BA", "H2-receptor antagonists", "tidine", [("01", "cimetidine"), ("02", "ranitidine"), ("03", "famotidine"), ("04", "nizatidine")]),
    ("A02BC", "Proton pump inhibitors", "prazole", [("01", "omeprazole"), ("02", "pantoprazole"), ("03", "lansoprazole"), ("04", "rabeprazole"), ("05", "esomeprazole")]),
    ("A03FA", "Propulsives", None, [("01", "metoclopramide"), ("02", "cisapride"), ("03", "domperidone")]),
    ("A04AA", "Serotonin (5HT3) antagonists", "setron", [("01", "ondansetron"), ("02", "granisetron"), ("03", "tropisetron"), ("04", "dolasetron"), ("05", "palonosetron")]),
    ("A10AB", "Insulins and analogues for injection, fast-acting", None, [("01", "insulin (human)"), ("04", "insulin lispro"), ("05", "insulin aspart"), ("06", "insulin glulisine")]),
    ("A10AE", "Insulins and analogues for injection, long-acting", None, [("04", "insulin glargine"), ("05", "insulin detemir"), ("06", "insulin degludec")]),
    ("A10BA", "Biguanides", None, [("02", "metformin")]),
    ("A10BB", "Sulfonylureas", None, [("01", "glibenclamide"), ("07", "glipizide"), ("09", "gliclazide"), ("12", "glimepiride")]),
    ("A10BH", "Dipeptidyl peptidase 4 (DPP-4) inhibitors", "gliptin", [("01", "sitagliptin"), ("02", "vildagliptin"), ("03", "saxagliptin"), ("04", "alogliptin"), ("05", "linagliptin")]),
    ("A10BJ", "Glucagon-like peptide-1 (GLP-1) analogues", "glutide", [("01", "exenatide"), ("02", "liraglutide"), ("03", "lixisenatide"), ("05", "dulaglutide"), ("06", "semaglutide")]),
    ("A10BK", "Sodium-glucose co-transporter 2 (SGLT2) inhibitors", "gliflozin", [("01", "dapagliflozin"), ("02", "canagliflozin"), ("03", "empagliflozin"), ("04", "ertugliflozin")]),
    ("B01AA", "Vitamin K antagonists", None, [("03", "warfarin"), ("07", "acenocoumarol")]),
    ("B01AB", "Heparin group", "parin", [("01", "heparin"), ("04", "dalteparin"), ("05", "enoxaparin"), ("10", "tinzaparin")]),
    ("B01AC", "Platelet aggregation inhibitors excl. heparin", "grel", [("04", "clopidogrel"), ("06", "acetylsalicylic acid"), ("22", "prasugrel"), ("24", "ticagrelor")]),
    ("B01AE", "Direct thrombin inhibitors", "gatran", [("07", "dabigatran etexilate")]),
    ("B01AF", "Direct factor Xa inhibitors", "xaban", [("01", "rivaroxaban"), ("02", "apixaban"), ("03", "edoxaban")]),
    ("B03AA", "Iron bivalent, oral preparations", None, [("07", "ferrous sulfate")]),
    ("C01AA", "Digitalis glycosides", None, [("05", "digoxin")]),
    ("C01BD", "Antiarrhythmics, class III", "darone", [("01", "amiodarone"), ("07", "dronedarone")]),
    ("C03AA", "Thiazides, plain", None, [("03", "hydrochlorothiazide")]),
    ("C03CA", "Sulfonamides, plain", "semide", [("01", "furosemide"), ("02", "bumetanide"), ("04", "torasemide")]),
    ("C03DA", "Aldosterone antagonists", "renone", [("01", "spironolactone"), ("04", "eplerenone")]),
    ("C07AB", "Beta blocking agents, selective", "olol", [("02", "metoprolol"), ("03", "atenolol"), ("07", "bisoprolol"), ("12", "nebivolol")]),
    ("C07AG", "Alpha and beta blocking agents", "dilol", [("01", "labetalol"), ("02", "carvedilol")]),
    ("C08CA", "Dihydropyridine derivatives", "dipine", [("01", "amlodipine"), ("02", "felodipine"), ("05", "nifedipine"), ("13", "lercanidipine")]),
    ("C08DA", "Phenylalkylamine derivatives", None, [("01", "verapamil")]),
    ("C09AA", "ACE inhibitors, plain", "pril", [("01", "captopril"), ("02", "enalapril"), ("03", "lisinopril"), ("04", "perindopril"), ("05", "ramipril")]),
    ("C09CA", "Angiotensin II receptor blockers (ARBs), plain", "sartan", [("01", "losartan"), ("03", "valsartan"), ("04", "irbesartan"), ("06", "candesartan"), ("07", "telmisartan"), ("08", "olmesartan medoxomil")]),
    ("C10AA", "HMG CoA reductase inhibitors", "vastatin", [("01", "simvastatin"), ("02", "lovastatin"), ("03", "pravastatin"), ("04", "fluvastatin"), ("05", "atorvastatin"), ("07", "rosuvastatin")]),
    ("C10AX", "Other lipid modifying agents", None, [("09", "ezetimibe")]),
    ("G04BE", "Drugs used in erectile dysfunction", "afil", [("03", "sildenafil"), ("08", "tadalafil")]),
    ("G04CA", "Alpha-adrenoreceptor antagonists", "osin", [("01", "alfuzosin"), ("02", "tamsulosin")]),
    ("H02AB", "Glucocorticoids", "sone", [("02", "dexamethasone"), ("04", "methylprednisolone"), ("06", "prednisolone"), ("07", "prednisone"), ("09", "hydrocortisone")]),
    ("H03AA", "Thyroid hormones", None, [("01", "levothyroxine sodium")]),
    ("J01AA", "Tetracyclines", "cycline", [("02", "doxycycline"), ("08", "minocycline")]),
    ("J01CA", "Penicillins with extended spectrum", "cillin", [("01", "ampicillin"), ("04", "amoxicillin")]),
    ("J01CR", "Combinations of penicillins, incl. beta-lactamase inhibitors", None, [("02", "amoxicillin and beta-lactamase inhibitor")]),
    ("J01DD", "Third-generation cephalosporins", "cef", [("01", "cefotaxime"), ("02", "ceftazidime"), ("04", "ceftriaxone")]),
    ("J01EE", "Combinations of sulfonamides and trimethoprim, incl. derivatives", None, [("01", "sulfamethoxazole and trimethoprim")]),
    ("J01FA", "Macrolides", "thromycin", [("01", "erythromycin"), ("09", "clarithromycin"), ("10", "azithromycin")]),
    ("J01MA", "Fluoroquinolones", "floxacin", [("02", "ciprofloxacin"), ("12", "levofloxacin"), ("14", "moxifloxacin")]),
    ("J01XD", "Imidazole derivatives", None, [("01", "metronidazole")]),
    ("J02AC", "Triazole derivatives", "conazole", [("01", "fluconazole"), ("02", "itraconazole"), ("03", "voriconazole"), ("04", "posaconazole")]),
    ("J05AB", "Nucleosides and nucleotides excl. reverse transcriptase inhibitors", "ciclovir", [("01", "aciclovir"), ("11", "valaciclovir")]),
    ("J05AH", "Neuraminidase inhibitors", "amivir", [("01", "zanamivir"), ("02", "oseltamivir")]),
    ("L01BA", "Folic acid analogues", "trexed", [("01", "methotrexate"), ("04", "pemetrexed")]),
    ("L01BC", "Pyrimidine analogues", "citabine", [("02", "fluorouracil"), ("05", "gemcitabine"), ("06", "capecitabine")]),
    ("L01CD", "Taxanes", "taxel", [("01", "paclitaxel"), ("02", "docetaxel")]),
    ("L01EA", "BCR-ABL tyrosine kinase inhibitors", "tinib", [("01", "imatinib"), ("02", "dasatinib"), ("03", "nilotinib")]),
    ("L01EB", "Epidermal growth factor receptor (EGFR) tyrosine kinase inhibitors", "tinib", [("01", "gefitinib"), ("02", "erlotinib"), ("03", "afatinib"), ("04", "osimertinib")]),
    ("L01FA", "CD20 (Clusters of Differentiation 20) inhibitors", "tuximab", [("01", "rituximab")]),
    ("L01FD", "HER2 (Human Epidermal Growth Factor Receptor 2) inhibitors", "tuzumab", [("01", "trastuzumab"), ("02", "pertuzumab")]),
    ("L01FF", "PD-1/PDL-1 (Programmed cell death protein 1/death ligand 1) inhibitors", "limab", [("01", "nivolumab"), ("02", "pembrolizumab")]),
    ("L01XA", "Platinum compounds", "platin", [("01", "cisplatin"), ("02", "carboplatin"), ("03", "oxaliplatin")]),
    ("L02BA", "Anti-estrogens", None, [("01", "tamoxifen")]),
    ("L02BB", "Anti-androgens", "lutamide", [("01", "flutamide"), ("03", "bicalutamide"), ("04", "enzalutamide")]),
    ("L02BG", "Aromatase inhibitors", "trozole", [("03", "anastrozole"), ("04", "letrozole"), ("06", "exemestane")]),
    ("L04AB", "Tumor necrosis factor alpha (TNF-alpha) inhibitors", "limumab", [("01", "etanercept"), ("02", "infliximab"), ("04", "adalimumab"), ("05", "certolizumab pegol"), ("06", "golimumab")]),
    ("L04AD", "Calcineurin inhibitors", None, [("01", "ciclosporin"), ("02", "tacrolimus")]),
    ("M01AB", "Acetic acid derivatives and related substances", "fenac", [("01", "indometacin"), ("05", "diclofenac")]),
    ("M01AE", "Propionic acid derivatives", "profen", [("01", "ibuprofen"), ("02", "naproxen"), ("03", "ketoprofen")]),
    ("M01AH", "Coxibs", "coxib", [("01", "celecoxib"), ("02", "rofecoxib"), ("05", "etoricoxib")]),
    ("M04AA", "Preparations inhibiting uric acid production", None, [("01", "allopurinol"), ("03", "febuxostat")]),
    ("M05BA", "Bisphosphonates", "dronic acid", [("04", "alendronic acid"), ("06", "ibandronic acid"), ("07", "risedronic acid"), ("08", "zoledronic acid")]),
    ("N02AA", "Natural opium alkaloids", None, [("01", "morphine"), ("03", "hydromorphone"), ("05", "oxycodone")]),
    ("N02AB", "Phenylpiperidine derivatives", None, [("03", "fentanyl")]),
    ("N02AX", "Other opioids", None, [("02", "tramadol"), ("06", "tapentadol")]),
    ("N02BA", "Salicylic acid and derivatives", None, [("01", "acetylsalicylic acid")]),
    ("N02BE", "Anilides", None, [("01", "paracetamol")]),
    ("N02CC", "Selective serotonin (5HT1) agonists", "triptan", [("01", "sumatriptan"), ("03", "zolmitriptan"), ("04", "rizatriptan")]),
    ("N03AF", "Carboxamide derivatives", None, [("01", "carbamazepine"), ("02", "oxcarbazepine")]),
    ("N03AG", "Fatty acid derivatives", None, [("01", "valproic acid")]),
    ("N03AX", "Other antiepileptics", "racetam", [("09", "lamotrigine"), ("11", "topiramate"), ("12", "gabapentin"), ("14", "levetiracetam"), ("16", "pregabalin")]),
    ("N04BA", "Dopa and dopa derivatives", None, [("02", "levodopa and decarboxylase inhibitor")]),
    ("N05AH", "Diazepines, oxazepines, thiazepines and oxepines", "apine", [("02", "clozapine"), ("03", "olanzapine"), ("04", "quetiapine")]),
    ("N05AX", "Other antipsychotics", None, [("08", "risperidone"), ("12", "aripiprazole")]),
    ("N05BA", "Benzodiazepine derivatives", "azepam", [("01", "diazepam"), ("06", "lorazepam"), ("12", "alprazolam")]),
    ("N05CF", "Benzodiazepine related drugs", None, [("01", "zopiclone"), ("02", "zolpidem")]),
    ("N06AB", "Selective serotonin reuptake inhibitors", "oxetine", [("03", "fluoxetine"), ("04", "citalopram"), ("05", "paroxetine"), ("06", "sertraline"), ("08", "fluvoxamine"), ("10", "escitalopram")]),
    ("N06AX", "Other antidepressants", None, [("11", "mirtazapine"), ("12", "bupropion"), ("16", "venlafaxine"), ("21", "duloxetine")]),
    ("N06DA", "Anticholinesterases", None, [("02", "donepezil"), ("03", "rivastigmine"), ("04", "galantamine")]),
    ("R03AC", "Selective beta-2-adrenoreceptor agonists", "terol", [("02", "salbutamol"), ("12", "salmeterol"), ("13", "formoterol")]),
    ("R03BA", "Glucocorticoids", None, [("02", "budesonide"), ("05", "fluticasone")]),
    ("R03BB", "Anticholinergics", "tropium bromide", [("01", "ipratropium bromide"), ("04", "tiotropium bromide")]),
    ("R03DC", "Leukotriene receptor antagonists", "lukast", [("03", "montelukast")]),
    ("R06AE", "Piperazine derivatives", None, [("07", "cetirizine"), ("09", "levocetirizine")]),
    ("R06AX", "Other antihistamines for systemic use", "tadine", [("13", "loratadine"), ("26", "fexofenadine"), ("27", "desloratadine")]),
    ("S01ED", "Beta blocking agents", None, [("01", "timolol")]),
    ("S01EE", "Prostaglandin analogues", "prost", [("01", "latanoprost"), ("03", "bimatoprost"), ("04", "travoprost")]),
]

# Withdrawn from most markets: kept resolvable for old data, not active for new data.
INACTIVE = {"A02BA02", "A03FA02", "M01AH02"}

PREFIXES = ["val", "dor", "lum", "tar", "ben", "cor", "fel", "nal", "ros", "tel", "zan", "mir",
            "pel", "sov", "ter", "quin", "rav", "lor", "ximo", "dela", "opa", "bri", "cas", "ela"]
MIDDLES = ["o", "a", "i", "e", "u", "omi", "ali", "eri", "ula", "ino"]

def synthetic_names(stem, rng, taken):
    while True:
        name = rng.choice(PREFIXES) + rng.choice(MIDDLES)
        if stem.startswith("cef"):
            name = "cef" + name
        else:
            name = name + (stem if not stem[0] in "aeiou" or name[-1] not in "aeiou" else stem[1:])
        if name not in taken:
            taken.add(name)
            return name

def drugs():
    rng = random.Random(20261128)
    rows, taken = [], set()
    for cls, class_name, _, curated in CLASSES:
        for suffix, name in curated:
            code = cls + suffix
            rows.append((code, name, cls, class_name, "false" if code in INACTIVE else "true", "curated"))
            taken.add(name)
    for cls, class_name, stem, _ in CLASSES:
        if stem is None:
            continue
        for number in range(60, 100):
            name = synthetic_names(stem, rng, taken)
            active = "false" if rng.random() < 0.08 else "true"
            rows.append((f"{cls}{number:02d}", name, cls, class_name, active, "synthetic"))
    rows.sort()
    return rows

SITES = [
    ("SITE-BOS-01", "Boston Harbor Clinical Research Center", "US", "ACTIVE"),
    ("SITE-LYN-02", "Lyon Croix-Rousse Investigation Unit", "FR", "ACTIVE"),
]
CITIES = [("NYC", "New York", "US"), ("CHI", "Chicago", "US"), ("SEA", "Seattle", "US"), ("HOU", "Houston", "US"),
          ("TOR", "Toronto", "CA"), ("MTL", "Montreal", "CA"), ("LON", "London", "GB"), ("MAN", "Manchester", "GB"),
          ("PAR", "Paris", "FR"), ("BER", "Berlin", "DE"), ("MUC", "Munich", "DE"), ("MAD", "Madrid", "ES"),
          ("BCN", "Barcelona", "ES"), ("MIL", "Milan", "IT"), ("ROM", "Rome", "IT"), ("AMS", "Amsterdam", "NL"),
          ("BRU", "Brussels", "BE"), ("STO", "Stockholm", "SE"), ("CPH", "Copenhagen", "DK"), ("WAW", "Warsaw", "PL"),
          ("PRG", "Prague", "CZ"), ("VIE", "Vienna", "AT"), ("ZRH", "Zurich", "CH"), ("DUB", "Dublin", "IE"),
          ("TYO", "Tokyo", "JP"), ("OSA", "Osaka", "JP"), ("SEL", "Seoul", "KR"), ("SYD", "Sydney", "AU"),
          ("MEL", "Melbourne", "AU"), ("SAO", "Sao Paulo", "BR"), ("BUE", "Buenos Aires", "AR"), ("MEX", "Mexico City", "MX")]
KINDS = ["University Hospital", "Clinical Research Unit", "Medical Center", "Oncology Institute", "Cardiology Clinic"]

def sites():
    rng = random.Random(7)
    rows = list(SITES)
    for i, (code, city, country) in enumerate(CITIES):
        status = "ACTIVE" if i % 9 else rng.choice(["PLANNED", "CLOSED"])
        rows.append((f"SITE-{code}-{1 + i % 3:02d}", f"{city} {rng.choice(KINDS)}", country, status))
    return sorted(rows)

def main():
    ROOT.mkdir(exist_ok=True)
    with open(ROOT / "drug_codes.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "name", "atc_class", "class_name", "active", "origin"])
        w.writerows(drugs())
    with open(ROOT / "sites.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "name", "country", "status"])
        w.writerows(sites())

if __name__ == "__main__":
    main()
