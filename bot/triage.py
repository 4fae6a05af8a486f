"""Danger triage: is a worker in danger? Checked on every inbound message, before the conversation flow.

The worst failure of the helpline is a worker in danger whose message sits unseen, so triage is built for
recall: a false alarm costs a staff member a minute, a miss can cost a life. It is a lexicon matcher, not a
model: every decision can be explained ("matched 'dipukul', violence, id") and an NGO can add words without
a programmer.

How a message is read (see docs/TRIAGE.md):

1. Zawgyi-encoded Burmese (Google's ``myanmartools`` detector) is converted to Unicode (``paraencoder``).
2. It is normalised: NFKC, case fold, Latin diacritics stripped (Vietnamese đ→d), native digits to ASCII,
   apostrophes dropped and other punctuation/symbols to spaces, doubled letters collapsed ("heeelp" →
   "help", on both sides: the lexicon is normalised the same way), "tlg2" → "tlg tlg", and spaces removed
   between characters of scripts written without spaces (Thai, Lao, Burmese, Khmer).
3. Phrases that contain a danger word but are not about danger (``SAFE_PHRASES``: "help me with", "ฆ่าเชื้อ")
   are cut out.
4. Each language's terms are matched: as substrings in Thai, Lao, Burmese and Khmer script; as whole words
   elsewhere, with that language's prefixes and endings (``AFFIXES``: "dipukul", "beating").

Topic words (passport, wages, hours, contract) are deliberately absent: a rights question that names a topic
is not an emergency. A question that names danger ("can my employer hit me?") is urgent: recall first.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
import warnings
from dataclasses import dataclass

from myanmartools import ZawgyiDetector
from para.convert import zg_to_unicode

CATEGORIES = ("violence", "sexual_violence", "confinement", "threat_to_life", "self_harm", "no_food_water",
              "medical", "trafficking", "sos")

# When a message matches several categories, staff see the first of these.
PRIORITY = ("self_harm", "threat_to_life", "sexual_violence", "violence", "medical", "confinement", "trafficking",
            "no_food_water", "sos")


@dataclass(frozen=True, slots=True)
class Assessment:
    urgent: bool
    category: str | None      # one of CATEGORIES, None when not urgent
    language: str | None      # the language of the matched term (ISO 639-1 code), None when not urgent
    matched: str | None       # the matched term (as in the lexicon), None when not urgent


NOT_URGENT = Assessment(False, None, None, None)

# ---------------------------------------------------------------------------------------------------------------
# The lexicon: language -> category -> terms. Write terms as people text them; case, accents, doubled letters and
# punctuation do not matter (they are normalised away, on both sides).
#
#   word          whole words (Thai, Lao, Burmese, Khmer script: anywhere, as a substring); the language's
#                 prefixes and endings (AFFIXES) are accepted: "pukul" also finds "dipukul", "beat" "beating"
#   stem*         anything may follow: "bachau*" finds "bachaunus", "बचाउनुहोस्"
#   {a|b} c       shorthand for the terms "a c" and "b c" ({|a} allows nothing)
#   ^word         only when it is the whole message ("tolong", "tolong tolong!!")
#   !word         only when it is the whole message and shouted: "help!", "heeelp", "help help" — but a bare
#                 "HELP" is the menu keyword (and the menu offers "I am in danger now")
#
# A term found in several languages is reported with the first language that lists it.
# ---------------------------------------------------------------------------------------------------------------

_EN_CANT = "{cant|cannot|can not|couldnt|unable to|not able to|not allowed to|dont let me|doesnt let me|wont let me|" \
           "never let me|not let me|they dont let me|they wont let me}"
_ID_NOT = "{tidak|tdk|gak|ga|gk|g|nggak|ngga|ngak|enggak|engga|tak|ndak|gag|nda}"
_ID_ME = "{saya|sy|aku|aq|ak|gue|gw|kami|kita}"
_MS_NOT = "{tak|tidak|tdk|x|tk|ta|idak}"
_MS_ME = "{saya|sy|aku|aq|kami|kita|sya}"
_TL_NOT = "{hindi|di|hnd|hndi}"
_VI_NOT = "{không|ko|k|hok|hông|khong|kg|kh|khg|hk}"
_VI_ME = "{tôi|em|con|tui|mình|chị|anh|cháu|t|e}"
_VI_CAN = "{được|dc|đc|duoc}"
_VI_WHO = "{chủ|ông chủ|bà chủ|cô chủ|họ|nó|anh ta|hắn|chồng|con chủ|người ta|môi giới|cai}"

LEXICON: dict[str, dict[str, list[str]]] = {
    "en": {
        "sos": [
            "sos", "s o s", "mayday", "!help", "help help", "help me", "help us", "help him", "help her",
            "{pls|plz|please|plese|pliz|plis|pleas} {help|hlp|halp}", "{help|hlp} {pls|plz|please}", "hlp me",
            "halp me", "{someone|somebody|anyone|anybody} help", "need help {now|urgently|urgent|asap|quick}",
            "urgent help", "help asap", "save me", "save us", "rescue", "emergency", "danger", "in trouble",
            "in danger", "{i am|im|i m|i|am|so|very|really} scared", "scared for my life", "fear for my life",
            "terrified", "{i am|im|i m|am} afraid", "get me out", "come and get me", "call the police for me",
            "need help {fast|quickly|quick|immediately|right now}", "help {fast|quickly|quick|now}",
            "please come {quick|quickly|fast|now|here}", "come {quick|quickly|fast} please", "cant take it anymore",
            "cannot take it anymore", "cant bear it",
        ],
        "violence": [
            "beat", "beat up", "hit", "hurt", "slap", "kick", "punch", "abuse", "abusing", "torture", "assault",
            "attack", "choke", "choking", "strangle", "{burn|burns|burned|burnt|burning} {me|my|us}", "bruise",
            "violent", "violence", "throw things at me", "threw things at me", "throws things at me", "mistreat",
            "beats", "stab", "{pull|pulls|pulled|pulling} my hair", "{threw|throws|throw|poured|pour|pours} hot water",
            "{bit|bites|bite} me", "{push|pushed|pushes|shoved} me", "beaten",
        ],
        "sexual_violence": [
            "rape", "raping", "rapist", "sexual assault", "sexually assaulted", "sexual abuse", "sexually abused",
            "sexual harassment", "sexually harassed", "harass", "harassment", "molest", "grope", "groping",
            "{touch|touches|touched|touching} {me|my body|my breast|my private}", "forced sex",
            "{force|forced|forces|forcing} me to have sex", "{force|forced|make|makes|made} me sleep with",
            "{wants|want|wanted} to sleep with me", "take off my clothes", "naked", "forced me to kiss",
            "forced himself", "forces himself", "{comes|came|come|coming|enter|enters|entered} into my room",
            "{enter|enters|entered|comes to|came to} my room at night", "{kiss|kissed|kisses} me",
        ],
        "confinement": [
            "locked in", "locked up", "locked inside", "locked {room|house|door}", "locked me", "locked us", "lock me",
            "lock us", "locks me", "locks us", "locked the door", "locks the door", "lock the door", "kept locked",
            "keep me locked", f"{_EN_CANT} {{leave|go out|get out|go outside|escape|go home|run|get away}}",
            "not allowed out", "not allowed outside", "not allowed to go out", "wont let me", "dont let me out",
            "doesnt let me", "not let me out", "let me out", "trapped", "imprisoned", "prisoner", "held captive",
            "being held", "held against my will", "kept inside", "confined", "{took|taken|take|takes|keeps} my phone",
            "confiscated my phone", "run away", "ran away", "escape",
            "stuck in {the|this|my|a} {house|room|home|place}",
            "{keep|keeps|kept|keeping} me {in|inside|locked|in the house|in the room}",
            "{cant|cannot|not allowed to|dont let me|wont let me} {call|contact|talk to} my family",
        ],
        "threat_to_life": [
            "kill", "murder", "threaten", "threat", "death threat", "knife", "gun", "going to kill", "gonna kill",
            "will kill", "{throw|push|pushed|threw} me {from|off} the",
        ],
        "self_harm": [
            "suicide", "suicidal", "kill myself", "want to die", "wanna die", "wish i was dead", "wish i were dead",
            "end my life", "take my life", "take my own life", "hang myself", "cut myself", "hurt myself",
            "harm myself", "self harm", "jump off", "jump from",
            "{hang|hanged|hanging|kill|killed|killing|cut|hurt} {herself|himself|themselves}", "tried to kill",
            "end everything", "{cut|cuts|slit|slitting|cutting} my {wrist|wrists|vein|veins}", "tired of {life|living}",
            "{dont|do not|dont wanna|dont want to|not want to}"
            " live",
            "no reason to live", "better off dead", "end it all", "cant go on", "poison myself", "overdose",
        ],
        "no_food_water": [
            "no food", "no water", "no rice", "no drinking water", "no clean water", "nothing to eat", "not given food",
            "not given any food", "not fed",
            "{dont|doesnt|do not|does not|never} {feed|give} me"
            " {food|anything to eat|water}",
            "{dont|doesnt} give food", "{dont|doesnt|do not|does not} feed me", "not allowed to eat", "starving",
            "starve", "very hungry", "so hungry",
            "{havent|have not|hasnt|not|didnt|did not} {eaten|eat|had food|had any food|had anything to eat}",
            "didnt eat for", "not eaten for", "{dont|doesnt|wont} let me eat", "starved",
        ],
        "medical": [
            "bleeding", "bleed", "blood everywhere", "{lots|lot|a lot} of blood", "{vomiting|coughing} blood",
            "unconscious", "not breathing", "{cant|cannot|can not|hard to} breathe", "fainted", "faint", "passed out",
            "collapsed", "seizure", "vomit", "heart attack", "very sick", "very ill", "seriously ill", "badly hurt",
            "injured", "broken bone", "broken {leg|arm|hand|rib|ribs}", "{fell|fall|falls} {from|off}",
            "fell down the stairs", "ambulance", "{not|wont|will not} wake up", "not waking up", "poisoned",
            "{i am|im|i m|is|am|she is|he is|hes|shes} dying", "dying here", "i {will|am going to|gonna} die",
            "{he|she|someone|somebody|friend|baby|my friend|they} {is|was|are} dead", "found dead", "dead body",
            "miscarriage",
        ],
        "trafficking": [
            "sold me", "sold us", "sold her", "sold him", "sold to", "sell me", "selling me", "sells me", "trafficked",
            "trafficking", "trafficker", "kidnap", "abduct", "taken away", "took me away", "take me away",
            "moved me to", "forced to work", "forced labour", "forced labor", "against my will", "debt bondage",
            "{dont|do not|don t} know where i am", "{place|house|city|country} i {dont|do not} know",
            "{took|taken|brought|moved} me to {a|another|an unknown}"
            " {place|house|city}",
            "{dont|do not} know where they took me",
        ],
    },
    "id": {
        "sos": [
            f"tolong {_ID_ME}", f"{{tolongin|tlgin|tulungin|tolongi}} {_ID_ME}", f"tlg {_ID_ME}", "^tolong", "^tlg",
            "^tolongin", "^tulung", "tolong tolong", "tlg tlg", "tulung", "minta tolong segera",
            f"{{tolong|tlg}} {{bantu|selamatkan}} {_ID_ME}", f"selamatkan {_ID_ME}", "darurat", "bahaya",
            "dalam bahaya", "gawat", f"{_ID_ME} takut", "takut banget", "ketakutan",
            f"{{udah|udh|sudah|sdh|dah}} {_ID_NOT} kuat", f"{_ID_NOT} kuat lagi",
        ],
        "violence": [
            "dipukul", "dipukuli", "dipukulin", "memukul", "mukul", "mukulin", f"pukul {_ID_ME}", "pukulin", "siksa",
            "menyiksa", "nyiksa", "aniaya", "tampar", "menampar", "nampar", "tendang", "menendang", "nendang", "tonjok",
            "nonjok", "hajar", "kekerasan", "main tangan", "dilempar", "disiram air panas", "disetrika", "dijambak",
            "jambak", "dicekik", "cekik", "disakiti", "menyakiti", "dianiaya", "digebuki", "gebuk", "dihantam",
            "{majikan|bos|madam|mister|dia|mereka|suami|anak majikan|nyonya|tuan|agen} {pukul|mukul|memukul|pukulin}",
            "{pukul|memukul|mukul} {kepala|muka|badan|wajah|perut}",
        ],
        "sexual_violence": [
            "perkosa", "pemerkosaan", "rudapaksa", "leceh", "pelecehan seksual", "cabul", "pencabulan", "raba", "grepe",
            "dipaksa {berhubungan|tidur|begituan|ml}", "diraba raba",
            f"masuk kamar {_ID_ME} {{malam|malem|tengah malam}}", "pegang {badan|dada|tubuh|payudara|bokong|pantat}",
            "pegang pegang",
        ],
        "confinement": [
            "kurung", "mengurung", "ngurung", "dikunci", "dikunciin", f"kunci {_ID_ME}", "sekap", "menyekap", "nyekap",
            f"{_ID_NOT} {{boleh|bisa|dibolehkan|diizinkan|dikasih|dibiarkan}} {{keluar|pulang|kabur}}",
            "dilarang keluar", "dilarang pulang", f"{_ID_ME} ditahan",
            f"{_ID_NOT} {{dikasih|dibolehin|diizinin|ngasih|kasih|bolehin|izinin|dibiarin}} {_ID_ME} {{keluar|pulang}}",
            "{hp|handphone|ponsel} {disita|diambil}", "terkurung", "terjebak", "kabur",
            "{hp|handphone|ponsel|telepon|hape} {saya|sy|aku|ku|ak} {diambil|disita|dirampas|ditahan}",
            f"{_ID_NOT} {{bisa|boleh|dikasih}} {{hubungi|telpon|telepon|menghubungi|kontak|nelpon}}",
        ],
        "threat_to_life": [
            "bunuh", "ancam", "mau dibunuh", "dibunuh",
        ],
        "self_harm": [
            "bunuh diri", "{ingin|mau|pengen|pingin|pgn|pengin|mo} mati", "mati aja", "mending mati", "lebih baik mati",
            "gantung diri", "minum racun", "potong nadi", "sayat tangan", f"{_ID_NOT} mau hidup lagi", "capek hidup",
            "cape hidup", "lelah hidup",
        ],
        "no_food_water": [
            f"{_ID_NOT} {{dikasih|dikasi|diberi|dikasi|boleh|bisa}} {{makan|minum}}",
            f"{_ID_NOT} ada {{makanan|makan|air minum|air}}", "kelaparan", f"{_ID_NOT} makan {{dari|sejak|selama}}",
            "belum makan dari", "belum makan sejak", "dibiarkan lapar",
            f"{_ID_NOT} makan {{2|3|4|5|dua|tiga|empat|berhari|seharian|sehari}}",
            f"hari {_ID_NOT} {{makan|dikasih makan|diberi makan}}",
        ],
        "medical": [
            "berdarah", "pendarahan", "perdarahan", "keluar darah", "muntah darah", "pingsan",
            f"{_ID_NOT} sadarkan diri", "sakit parah", "sakit keras", "sekarat", "luka parah", "terluka", "dilukai",
            "patah tulang", "jatuh dari", "kejang", "sesak napas", "sesak nafas", f"{_ID_NOT} bisa napas", "keracunan",
            "hampir mati", "mau mati rasanya",
        ],
        "trafficking": [
            "dijual", "dijualin", f"{{menjual|jual}} {_ID_ME}", "diperdagangkan", "perdagangan orang", "paksa",
            "memaksa", "maksa", f"{{bawa|membawa|dibawa}} {_ID_ME} ke", "dibawa ke {tempat|rumah} lain",
            "dipindah tanpa", "dipindahkan tanpa", "dibawa pergi", "dibawa {agen|sponsor|calo|orang|majikan|mereka} ke",
            f"tempat yang {_ID_ME} {_ID_NOT} {{tau|tahu|kenal}}", "perdagangan manusia", "culik", "dibawa kabur",
            "dibawa paksa", "dipindah paksa", "dipaksa kerja", "kerja paksa",
            f"{_ID_NOT} {{tahu|tau}} {{saya|aku}} di mana", f"{_ID_NOT} {{tahu|tau}} di mana",
        ],
    },
    "ms": {
        "sos": [
            f"tolong {_MS_ME}", f"tlg {_MS_ME}", "^tolong", "^tlg", "tolong tolong", "tlg tlg", "kecemasan", "bahaya",
            "dalam bahaya", f"selamatkan {_MS_ME}", f"{_MS_ME} takut", "takut sangat",
        ],
        "violence": [
            f"pukul {_MS_ME}", "dipukul", "memukul", "kena pukul", "belasah", "tampar", "menampar", "tendang",
            "menendang", "disepak", f"sepak {_MS_ME}", "dera", "siksa", "menyeksa", "seksa", "aniaya", "dibelasah",
            "kena dera", "kena tampar", "dicekik",
            "{majikan|bos|madam|dia|mereka|suami|tuan|anak majikan|agen} {selalu |suka |asyik |}"
            "{pukul|memukul|belasah}",
            "pukul {kepala|muka|badan|perut}",
        ],
        "sexual_violence": [
            "rogol", "cabul", "gangguan seksual", "raba", "dicabul", "mencabul",
        ],
        "confinement": [
            "kurung", "mengurung", "dikunci", f"kunci {_MS_ME}",
            f"{_MS_NOT} {{boleh|dapat|dibenarkan|dibagi|bagi}} {{keluar|balik|pulang|lari}}", "terkurung",
            "terperangkap", f"{_MS_ME} ditahan", "telefon dirampas", "fon dirampas",
            f"{_MS_NOT} {{bagi|benarkan|izinkan|kasi|bagi}} {_MS_ME} {{keluar|balik|pulang}}",
        ],
        "threat_to_life": [
            "bunuh", "ugut", "ancam", "nak bunuh",
        ],
        "self_harm": [
            "bunuh diri", "{nak|mahu|ingin|mau} mati", "lebih baik mati", f"{_MS_NOT} nak hidup", "gantung diri",
        ],
        "no_food_water": [
            "{tak ada|takde|tiada|tidak ada|x ada|xde|xda|tkde} {makanan|makan|air|nasi}",
            f"{_MS_NOT} {{diberi|bagi|dibagi|dapat}} {{makan|minum}}", "kebuluran", "kelaparan",
            f"{_MS_NOT} makan {{dua|2|tiga|3|berhari|seharian}}", f"hari {_MS_NOT} {{makan|diberi makan|bagi makan}}",
        ],
        "medical": [
            "pengsan", "pingsan", f"{_MS_NOT} sedarkan diri", "tak sedar", "berdarah", "pendarahan", "cedera parah",
            "cedera teruk", "sakit teruk", "sakit tenat", "patah tulang", "patah kaki", "patah tangan", "jatuh dari",
            "sesak nafas", f"{_MS_NOT} boleh bernafas", "keracunan", "nazak",
        ],
        "trafficking": [
            "dijual", f"jual {_MS_ME}", "culik", "dipaksa kerja", "kerja paksa", "pemerdagangan orang", "diperdagang",
            "dibawa lari",
        ],
    },
    "tl": {
        "sos": [
            "^tulong", "tulong po", "tulong tulong", "{tulungan|tulongan|tulungn} {mo|nyo|niyo|ninyo} ako",
            "{tulungan|tulongan} {ako|kami|mo kami|nyo kami|niyo kami}", "saklolo",
            "{sagipin|iligtas} {mo|nyo|niyo}"
            " ako",
            "sagipin ako", "iligtas ako", "delikado ako", "nasa panganib", "panganib", "takot na takot ako",
            "natatakot ako",
        ],
        "violence": [
            "sinaktan", "sinasaktan", "sasaktan", "saktan", "nanakit", "nananakit", "binugbog", "binubugbog", "bugbog",
            "sinuntok", "sinusuntok", "suntok", "sinampal", "sinasampal", "sampal", "sinipa", "sinisipa", "sipa",
            "pinalo", "pinapalo", "hinampas", "hinahampas", "maltrato", "minamaltrato", "abuso", "inaabuso", "aabuso",
            "sinakal", "pinaso", "tinadyakan", "pinagbubuhatan", "pinagbuhatan", "buhatan ng kamay",
        ],
        "sexual_violence": [
            "ginahasa", "gahasa", "gagahasain", "hinipuan", "hinihipuan", "hipuan", "minolestiya", "molestiya",
            "binastos", "binabastos", "pinagsamantalahan", "rape",
        ],
        "confinement": [
            "kinulong", "ikinulong", "kinukulong", "nakakulong", "nakakandado", "ikinandado",
            f"{_TL_NOT} ako pinapalabas", f"{_TL_NOT} pinapalabas", "ayaw akong palabasin",
            f"{_TL_NOT} ako {{makalabas|makaalis|makauwi|pinapauwi}}", f"{_TL_NOT} {{makalabas|makaalis|makauwi}}",
            "bawal lumabas", "bawal ako lumabas", f"{_TL_NOT} pinapauwi", "naka lock", "nakalock", "ni lock", "nilock",
            "{lock|lock nila|locked} ako", "kinandado",
        ],
        "threat_to_life": [
            "papatayin", "patayin", "pinatay", "pumatay", "papatay", "tinakot", "tinatakot", "binantaan",
            "pinagbantaan", "mamatay",
        ],
        "self_harm": [
            "gusto ko {na|nang} mamatay", "mamatay na lang", "magpakamatay", "nagpakamatay", "magpapakamatay",
            "{ayoko|ayaw ko} {na|nang} mabuhay", "wakasan ang buhay",
        ],
        "no_food_water": [
            "walang makain", "wala akong makain", "walang pagkain", f"{_TL_NOT} {{ako |kami |}}{{pinapakain|pinakain}}",
            f"{_TL_NOT} {{ako |pa ako |}}kumakain",
            f"{_TL_NOT} {{ako |kami |}}{{binibigyan|binigyan|bibigyan}} ng {{pagkain|makakain|tubig}}",
            "gutom na gutom", "nagugutom", "walang tubig", "walang maiinom",
        ],
        "medical": [
            "duguan", "dumudugo", "nagdurugo", "maraming dugo", "nahimatay", "hinimatay", "walang malay",
            "nawalan ng malay", f"{_TL_NOT} makahinga", "malubha", "naaksidente", "nabalian", "nahulog {ako|siya|mula}",
            "nalason",
        ],
        "trafficking": [
            "ibinenta", "binenta", "benenta", "ipinagbili", "binili ako", "dinukot", "kinidnap", "tinangay",
            "dinala sa ibang lugar", "sapilitang trabaho", "pinilit magtrabaho",
        ],
    },
    "vi": {
        "sos": [
            f"cứu {_VI_ME}", "cứu với", "cứu mạng", "cứu giúp", "^cứu", f"giúp {_VI_ME} với", "giúp với", "nguy hiểm",
            "khẩn cấp", f"{_VI_ME} sợ {{quá|lắm}}",
        ],
        "violence": [
            f"đánh {_VI_ME}", "bị đánh", "đánh đập", "bạo hành", "hành hạ", "ngược đãi", f"{{tát|đấm}} {_VI_ME}",
            "bị tát", "bị đấm", f"bị {_VI_WHO} {{đánh|tát|đấm|đá|hành hạ}}", "bầm dập",
        ],
        "sexual_violence": [
            "hiếp dâm", "bị hiếp", f"hiếp {_VI_ME}", "cưỡng hiếp", "xâm hại", "quấy rối tình dục", "sàm sỡ",
            f"bị {_VI_WHO} {{hiếp|sờ|cưỡng hiếp}}", "ép quan hệ", "cưỡng bức", "bị sờ", "sờ soạng", "sờ mó",
        ],
        "confinement": [
            "bị nhốt", f"nhốt {_VI_ME}", "nhốt trong", f"bị {_VI_WHO} nhốt", "khóa cửa", "khoá cửa",
            f"{_VI_NOT} {_VI_CAN} {{ra ngoài|ra khỏi|đi ra|về|đi đâu}}",
            f"{_VI_NOT} cho {{ra|về|đi|tôi ra|em ra|ra ngoài}}", "giam giữ", f"{_VI_NOT} thoát được", "mất tự do",
        ],
        "threat_to_life": [
            "giết", "dọa giết", "đe dọa", "bị đe dọa",
        ],
        "self_harm": [
            "muốn chết", "{muốn|định|sẽ} tự tử", "tự sát", f"{_VI_NOT} muốn sống", "chán sống", "nhảy lầu",
        ],
        "no_food_water": [
            f"{_VI_NOT} có gì {{ăn|để ăn}}", f"{_VI_NOT} cho {{ăn|tôi ăn|em ăn|uống}}", "bị bỏ đói", "chết đói",
            "nhịn đói", f"{_VI_NOT} có {{cơm|nước uống|đồ ăn}}", f"{_VI_NOT} {_VI_CAN} ăn",
        ],
        "medical": [
            "chảy máu", "bất tỉnh", "bị ngất", "ngất xỉu", "ngất đi", "bị xỉu", "bị thương", "gãy {chân|tay|xương}",
            "khó thở", f"{_VI_NOT} thở được", "ốm nặng", "bệnh nặng", "sắp chết", "cấp cứu",
        ],
        "trafficking": [
            "bị bán", f"bị {_VI_WHO} bán", "buôn người", "bắt cóc", "lừa bán", "bị bắt đi", "bị đưa đi",
            f"{_VI_NOT} biết {{đang ở đâu|ở đâu}}", "lao động cưỡng bức", "cưỡng bức lao động",
        ],
    },
    "th": {
        "sos": [
            "ช่วยด้วย", "ช่วยหนูด้วย", "ช่วยฉันด้วย", "ช่วยผมด้วย", "ช่วยเราด้วย", "ช่วยที", "ช่วยหนูที", "ช่วยฉันที",
            "ช่วยผมที", "ช่วยชีวิต", "อันตราย", "ฉุกเฉิน", "กลัวมาก", "chuay duay", "chuay duai", "chuai duai",
            "chuay duey", "chuay dui", "chuay noo duay", "chuay chan duay",
        ],
        "violence": [
            "ตีฉัน", "ตีหนู", "ตีผม", "ตีเรา", "โดนตี", "ถูกตี", "ทุบตี", "ทำร้าย", "โดนซ้อม", "ถูกซ้อม", "โดนตบ",
            "ถูกตบ", "ตบหน้า", "ตบฉัน", "ตบหนู", "โดนเตะ", "เตะฉัน", "เตะหนู", "โดนต่อย", "ทารุณ", "ทรมาน",
        ],
        "sexual_violence": [
            "ข่มขืน", "ล่วงละเมิด", "ลวนลาม", "ล่วงเกิน", "บังคับมีเซ็กส์", "บังคับมีเพศสัมพันธ์", "ข่มเหง",
        ],
        "confinement": [
            "ขัง", "ล็อกประตู", "ล็อคประตู", "ล็อคห้อง", "ล็อกห้อง", "ล็อคไว้", "ล็อกไว้", "ถูกล็อค", "ถูกล็อก",
            "โดนล็อค", "โดนล็อก", "ไม่ให้{หนู|ฉัน|ผม|เรา}ออก", "ออกไปไหนไม่ได้", "ออกไปข้างนอกไม่ได้", "ไม่ให้ออก",
            "ออกจากบ้านไม่ได้", "หนีไม่ได้", "ไม่ให้กลับบ้าน", "ยึดโทรศัพท์", "ยึดมือถือ",
        ],
        "threat_to_life": [
            "ฆ่า", "ขู่",
        ],
        "self_harm": [
            "อยากตาย", "ฆ่าตัวตาย", "ไม่อยากมีชีวิต", "อยากจบชีวิต", "ไม่อยากอยู่แล้ว", "กินยาตาย",
        ],
        "no_food_water": [
            "ไม่มีข้าวกิน", "ไม่มีอะไรกิน", "ไม่มีอะไรจะกิน", "ไม่ได้กิน", "ไม่ให้กิน", "ไม่มีน้ำกิน", "ไม่มีน้ำดื่ม",
            "อดข้าว", "อดอาหาร", "หิวมาก", "ไม่มีอาหาร",
        ],
        "medical": [
            "เลือดออก", "เลือดไหล", "หมดสติ", "เป็นลม", "สลบ", "ป่วยหนัก", "บาดเจ็บ", "หายใจไม่ออก", "กระดูกหัก",
            "ตกจาก", "ประสบอุบัติเหตุ", "เกิดอุบัติเหตุ", "รถพยาบาล",
        ],
        "trafficking": [
            "ถูกขาย", "โดนขาย", "ขายฉัน", "ขายหนู", "ค้ามนุษย์", "ลักพาตัว", "ถูกพาตัวไป", "บังคับใช้แรงงาน",
            "บังคับทำงาน", "ไม่รู้ว่าอยู่ที่ไหน",
        ],
    },
    "my": {
        "sos": [
            "ကယ်ပါ", "ကယ်ကြပါ", "ကယ်ကြ", "ကယ်ပေး", "ကယ်တင်", "ကူညီကြပါ", "အရေးပေါ်", "အန္တရာယ်", "အရမ်းကြောက်",
            "kal par", "kal pr", "kal pa", "kel pa", "kel par", "kay par", "kal kya par", "kal kya pr", "a yay paw",
            "ayay paw", "ayaypaw",
        ],
        "violence": [
            "ရိုက်", "ထိုးကြိတ်", "ကိုထိုး", "ကိုကန်", "လက်သီးနဲ့ထိုး", "နှိပ်စက်", "ညှဉ်းပန်း", "အကြမ်းဖက်",
        ],
        "sexual_violence": [
            "မုဒိမ်း", "အဓမ္မပြုကျင့်", "လိင်ပိုင်းဆိုင်ရာ", "စော်ကား", "ထိပါးနှောင့်ယှက်",
        ],
        "confinement": [
            "ပိတ်ထား", "ပိတ်လှောင်", "ချုပ်ထား", "သော့ခတ်", "အပြင်မထွက်ရ", "အပြင်ကိုမထွက်ရ", "ထွက်ခွင့်မပေး",
            "ထွက်ခွင့်မရ", "မထွက်ခိုင်း", "ပြန်ခွင့်မပေး", "ဖုန်းသိမ်း", "ချုပ်နှောင်", "ထွက်ပြေးလို့မရ", "ထွက်လို့မရ",
        ],
        "threat_to_life": [
            "သတ်မယ်", "သတ်ပစ်", "သေတော့မယ်", "သေရတော့မယ်", "သတ်မှာ", "သတ်ချင်", "ခြိမ်းခြောက်", "သေအောင်",
        ],
        "self_harm": [
            "သေချင်", "ရှင်ချင်တော့ဘူး", "အသက်မရှင်ချင်", "ရှင်သန်ချင်တော့ဘူး", "ကိုယ့်ကိုယ်ကိုသတ်",
            "ကိုယ့်ကိုကိုယ်သတ်", "မိမိကိုယ်ကိုသတ်", "ကြိုးဆွဲ", "အဆိပ်သောက်",
        ],
        "no_food_water": [
            "ထမင်းမကျွေး", "စားစရာမရှိ", "စားစရာဘာမှမရှိ", "ထမင်းမစားရ", "ဘာမှမစားရ", "ရေမရှိ", "အစာငတ်", "ငတ်နေ",
        ],
        "medical": [
            "သွေးထွက်", "သွေးတွေထွက်", "သွေးယို", "သတိလစ်", "မေ့မြော", "ဒဏ်ရာ", "အသက်ရှူမဝ", "အသက်ရှူလို့မရ",
            "အရိုးကျိုး", "ပြုတ်ကျ",
        ],
        "trafficking": [
            "ရောင်းစား", "ရောင်းလိုက်", "လူကုန်ကူး", "ပြန်ပေးဆွဲ", "အဓမ္မ", "ဘယ်ရောက်နေမှန်းမသိ",
        ],
    },
    "km": {
        "sos": [
            "ជួយខ្ញុំផង", "ជួយផង", "ជួយយើងផង", "ជួយសង្គ្រោះ", "សង្គ្រោះ", "គ្រោះថ្នាក់", "អាសន្ន", "ខ្លាចណាស់",
            "juy knhom phong", "chuoy knhom phong", "juy phong", "chuoy phong", "jouy knhom phong",
            "chuay khnhom phong", "juy khnhom phong",
        ],
        "violence": [
            "វាយខ្ញុំ", "វាយដំ", "ត្រូវគេវាយ", "គេវាយ", "ទះកំផ្លៀង", "ធាក់", "ធ្វើបាប", "ហិង្សា",
        ],
        "sexual_violence": [
            "រំលោភ", "បៀតបៀនផ្លូវភេទ",
        ],
        "confinement": [
            "ចាក់សោ", "ឃុំខ្លួន", "ឃុំឃាំង", "គេឃុំ", "ឃុំក្នុង", "ឃុំទុក", "ចេញក្រៅមិនបាន",
            "{មិនឱ្យ|មិនអោយ|មិនឲ្យ|អត់ឱ្យ|អត់អោយ}{|ខ្ញុំ|យើង}ចេញ", "ចេញមិនបាន", "ចេញមិនរួច", "រត់មិនរួច",
            "ដកហូតទូរស័ព្ទ",
        ],
        "threat_to_life": [
            "សម្លាប់", "គំរាម",
        ],
        "self_harm": [
            "ចង់ស្លាប់", "សម្លាប់ខ្លួន", "មិនចង់រស់", "អត្តឃាត",
        ],
        "no_food_water": [
            "គ្មានបាយហូប", "គ្មានអ្វីហូប", "អត់បាយ", "{មិនឱ្យ|មិនអោយ|មិនឲ្យ}ហូប", "ឃ្លានខ្លាំង", "គ្មានទឹក", "អត់ទឹក",
            "អត់អាហារ", "គ្មានអាហារ",
        ],
        "medical": [
            "ហូរឈាម", "ឈាមចេញ", "សន្លប់", "ឈឺធ្ងន់", "របួស", "ដកដង្ហើមមិនរួច", "បាក់ឆ្អឹង", "ធ្លាក់ពី",
        ],
        "trafficking": [
            "លក់ខ្ញុំ", "ត្រូវគេលក់", "គេលក់ខ្ញុំ", "ជួញដូរមនុស្ស", "ចាប់ជំរិត", "ពលកម្មដោយបង្ខំ", "បង្ខំឱ្យធ្វើការ",
        ],
    },
    "lo": {
        "sos": [
            "ຊ່ວຍແດ່", "ຊ່ວຍຂ້ອຍແດ່", "ຊ່ວຍນຳ", "ຊ່ວຍຂ້ອຍນຳ", "ຊ່ວຍດ້ວຍ", "ຊ່ວຍຊີວິດ", "ອັນຕະລາຍ", "ສຸກເສີນ",
            "ຢ້ານຫຼາຍ", "suay dae", "xuay dae", "souay dae", "suay khoy dae", "xuay khoy dae",
        ],
        "violence": [
            "ຕີຂ້ອຍ", "ຖືກຕີ", "ໂດນຕີ", "ທຸບຕີ", "ທຳຮ້າຍ", "ຕົບຂ້ອຍ", "ເຕະຂ້ອຍ", "ທໍລະມານ", "ຂົ່ມເຫັງ",
        ],
        "sexual_violence": [
            "ຂົ່ມຂືນ", "ລ່ວງລະເມີດ", "ລວນລາມ",
        ],
        "confinement": [
            "ຂັງ", "ລັອກປະຕູ", "ອອກໄປໃສບໍ່ໄດ້", "ອອກບໍ່ໄດ້", "ອອກໄປບໍ່ໄດ້", "ອອກຈາກເຮືອນບໍ່ໄດ້",
            "ບໍ່ໃຫ້{|ຂ້ອຍ|ພວກເຮົາ}ອອກ", "ໜີບໍ່ໄດ້", "ບໍ່ໃຫ້ກັບບ້ານ", "ຍຶດໂທລະສັບ",
        ],
        "threat_to_life": [
            "ຈະຂ້າ", "ຂ້າຂ້ອຍ", "ຂ້າຖິ້ມ", "ຂູ່",
        ],
        "self_harm": [
            "ຢາກຕາຍ", "ຂ້າຕົວຕາຍ", "ບໍ່ຢາກມີຊີວິດ", "ບໍ່ຢາກຢູ່ແລ້ວ",
        ],
        "no_food_water": [
            "ບໍ່ມີເຂົ້າກິນ", "ບໍ່ມີຫຍັງກິນ", "ບໍ່ໃຫ້ກິນ", "ບໍ່ໄດ້ກິນ", "ບໍ່ມີນ້ຳກິນ", "ອຶດເຂົ້າ", "ອຶດອາຫານ", "ຫິວຫຼາຍ",
        ],
        "medical": [
            "ເລືອດອອກ", "ເລືອດໄຫຼ", "ສະຫຼົບ", "ເປັນລົມ", "ບໍ່ຮູ້ສຶກຕົວ", "ເຈັບໜັກ", "ບາດເຈັບ", "ຫາຍໃຈບໍ່ອອກ",
            "ກະດູກຫັກ",
        ],
        "trafficking": [
            "ຖືກຂາຍ", "ຂາຍຂ້ອຍ", "ຄ້າມະນຸດ", "ລັກພາຕົວ", "ບັງຄັບໃຫ້ເຮັດວຽກ",
        ],
    },
    "ne": {
        "sos": [
            "बचाउ*", "गुहार", "खतरा*", "आपतकाल*", "डर लाग्यो", "डर लागिरहेको", "bachau*", "bachaw*", "malai bachau*",
            "khatra*", "guhar", "dar lagyo", "dar lagiraheko",
        ],
        "violence": [
            "कुट्*", "कुटे*", "कुटि*", "कुटपिट*", "पिट्*", "पिटे*", "पिटाइ*", "थप्पड*", "हिंसा*", "यातना*", "kuty*",
            "kutch*", "kutc*", "kute*", "kutn*", "kuti*", "kutpit*", "pity*", "pitai*", "thappad*", "yatana", "himsa",
            "hinsa",
        ],
        "sexual_violence": [
            "बलात्कार*", "जबरजस्ती करणी", "यौन दुर्व्यवहार*", "यौन हिंसा*", "यौन शोषण*", "छेडछाड*", "balatkar*",
            "jabarjasti karani", "yaun*", "chhedchhad*", "chedchad*",
        ],
        "confinement": [
            "थुन*", "कोठामा बन्द", "ढोका लगाएर",
            "{बाहिर|घर} {जान|निस्कन|निस्किन} {दिँदैन|दिंदैन|दिदैन|दिन्न|दिनु हुन्न|दिएन}",
            "{जान|निस्कन} {दिँदैन|दिंदैन|दिदैन|दिन्न}", "thune*", "thuni*", "thuny*", "thunch*",
            "{bahira|bahir|baira|bahar|ghar} {jana|jaan|jaana|niskana|nikalna|niskina} "
            "{didaina|dindaina|dinna|diena|dida|dinnan|dedaina}",
            "{jana|niskana} {didaina|dindaina|dinna}",
        ],
        "threat_to_life": [
            "मार्छु", "मार्छ", "मार्छन्", "मारिदिन्छु", "मारिदिन्छ", "मार्ने", "ज्यान मार*", "धम्की*", "marchu",
            "marchha", "marcha", "mardinchu", "mari dinchu", "maridinchu", "marne", "jyan mar*", "dhamki*",
        ],
        "self_harm": [
            "मर्न मन", "मर्न चाहन्छु", "आत्महत्या*", "बाँच्न मन छैन", "marna man", "marna mann", "marna chahanchu",
            "aatmahatya*", "atmahatya*", "bachna man chaina", "bachna man chhaina",
        ],
        "no_food_water": [
            "खाना {दिँदैन|दिदैन|दिंदैन|दिन्न|दिएन|दिदैनन्|छैन}", "खान दिँदैन", "खान दिदैन", "खान दिंदैन", "भोकै",
            "भोको छु", "खाना नपाएको", "पानी छैन", "khana {dinna|didaina|dindaina|diena|chaina|chhaina|napayeko}",
            "khana pani {chaina|chhaina|didaina|dinna|dindaina|diena}", "खाना पानी {छैन|दिँदैन|दिदैन|दिन्न}", "bhokai",
            "bhoko chu", "pani chaina", "pani chhaina",
        ],
        "medical": [
            "रगत बग*", "रगत आइ*", "रगत धेरै", "रगत निस्क*", "बेहोस*", "बेहोश*", "धेरै बिरामी", "घाइते",
            "सास फेर्न सकिन*", "हड्डी भाँचि*", "ragat bag*", "ragat aai*", "ragat dherai", "ragat niska*", "behos*",
            "behosh*", "dherai birami", "ghaite", "sas ferna sakina*",
        ],
        "trafficking": [
            "बेचि*", "बेच्यो", "बेचिदियो", "बेचबिखन*", "अपहरण*", "जबरजस्ती*", "bechi*", "bechyo", "bech diyo",
            "bechbikhan*", "apaharan*", "jabarjasti*",
        ],
    },
    "hi": {
        # romanised Hindi and Urdu are the same words: they are listed once, here
        "sos": [
            "बचाओ", "बचाइए", "बचा लो", "मदद करो", "मदद कीजिए", "खतरा", "खतरे में", "डर लग रहा", "bachao", "bachaw",
            "bacha lo", "bachalo", "bachaiye", "koi bachao", "madad karo", "madad kijiye", "madad kro", "help karo",
            "khatra", "khatre mein", "khatre me", "dar lag raha", "darr lag raha",
        ],
        "violence": [
            "मारता", "मारती", "मारते", "मारा", "मार रहा", "मार रही", "मारपीट", "पीटता", "पीटती", "पीटते", "पिटाई",
            "थप्पड़", "हिंसा", "marta", "marti", "marte", "mara", "mar raha", "mar rahi", "marpeet", "marpit", "pitai",
            "peetai", "peta", "peet raha", "pit raha", "pit rahi", "thappad", "thapad", "laat mari", "zulm", "जुल्म",
            "जला दिया", "jala diya",
        ],
        "sexual_violence": [
            "बलात्कार*", "यौन उत्पीड़न", "यौन शोषण", "छेड़छाड़", "गलत तरीके से छू*", "balatkar*", "yon utpidan",
            "yaun shoshan", "chhedchhad", "chedchad", "chhed chhad", "galat tarike se chhu*", "galat jagah chhu*",
        ],
        "confinement": [
            "मुझे बंद", "बंद करके रखा", "बंद कर रखा", "कमरे में बंद", "घर में बंद", "ताला लगा", "बाहर जाने नहीं",
            "बाहर नहीं जाने", "बाहर निकलने नहीं", "कैद", "कैदी", "जाने नहीं देते", "नहीं जाने देते",
            "{mujhe|hume|humein|hamein} band", "band {karke|kar ke|kar} rakha", "{kamre|ghar} {mein|me|main} band",
            "tala laga", "bahar {jane|nikalne} {nahi|nahin|nhi}", "bahar {nahi|nahin|nhi} {jane|nikalne}", "qaid",
            "kaid", "{jane|nikalne} {nahi|nahin|nhi} {dete|deta|deti|dety}", "{nahi|nahin|nhi} jane {dete|deta|deti}",
            "ghar {nahi|nahin} jane",
        ],
        "threat_to_life": [
            "जान से मार*", "मार डाल*", "मार दूंगा", "मार दूँगा", "मार देगा", "मार देंगे", "धमकी", "jaan se maar*",
            "jan se mar*", "mar dal*", "maar dal*", "mar dunga", "maar dunga", "mar dega", "maar dega", "mar denge",
            "dhamki", "khatam kar dunga", "khatam kar denge",
        ],
        "self_harm": [
            "मरना चाहता", "मरना चाहती", "आत्महत्या", "खुदकुशी", "जीना नहीं चाहता", "जीना नहीं चाहती", "मर जाऊंगा",
            "मर जाऊंगी", "marna chahta", "marna chahti", "aatmahatya", "atmahatya", "khudkushi", "khudkhushi",
            "jeena nahi chahta", "jeena nahi chahti", "jina nahi chahta", "jina nahi chahti", "mar jaunga",
            "mar jaungi",
        ],
        "no_food_water": [
            "खाना नहीं", "खाना नहीं मिला", "भूखा", "भूखी", "भूखे", "पानी नहीं", "कुछ नहीं खाया",
            "{kuch|kuchh|kuchbhi|kuch bhi} {nahi|nahin|nhi} {khaya|mila khane}", "khana {nahi|nahin|nhi}", "bhookha",
            "bhukha", "bhookhi", "bhukhi", "paani {nahi|nahin}", "pani {nahi|nahin}",
        ],
        "medical": [
            "खून बह*", "खून निकल*", "बेहोश", "बहुत बीमार", "सांस नहीं", "हड्डी टूट*", "चोट लगी", "घायल", "khoon beh*",
            "khun beh*", "khoon nikal*", "khun nikal*", "behosh", "behos", "bahut bimar", "saans nahi", "sans nahi",
            "haddi toot*", "chot lagi", "ghayal", "accident ho gaya", "{chhat|chat|upar|chhath} se gir*",
        ],
        "trafficking": [
            "बेच दिया", "मुझे बेचा", "मानव तस्करी", "तस्करी", "अपहरण", "अगवा", "ज़बरदस्ती काम", "बंधुआ", "bech diya",
            "bech diye", "bech dia", "mujhe becha", "manav taskari", "taskari", "apaharan", "agwa", "zabardasti kaam",
            "jabardasti kaam", "bandhua",
        ],
    },
    "ur": {
        "sos": [
            "بچاؤ", "بچاو", "بچا لو", "مدد کرو", "مدد کریں", "خطرہ", "خطرے میں", "ایمرجنسی", "ڈر لگ رہا",
        ],
        "violence": [
            "مارتا", "مارتی", "مارتے", "مارا", "مار رہا", "پٹائی", "پیٹتا", "تھپڑ", "تشدد", "ظلم", "مار پیٹ",
        ],
        "sexual_violence": [
            "زیادتی", "ریپ", "عصمت دری", "جنسی ہراسانی", "ہراساں", "جنسی تشدد", "چھیڑ چھاڑ",
        ],
        "confinement": [
            "مجھے بند", "بند کر کے رکھا", "بند کر رکھا", "کمرے میں بند", "گھر میں بند", "تالا لگا", "باہر نہیں جانے",
            "باہر جانے نہیں", "جانے نہیں دیتے", "نہیں جانے دیتے", "قید", "گھر سے نکلنے نہیں",
        ],
        "threat_to_life": [
            "جان سے مار", "مار ڈالے", "مار ڈالوں", "مار دے گا", "مار دوں گا", "دھمکی", "قتل",
        ],
        "self_harm": [
            "مرنا چاہتا", "مرنا چاہتی", "خودکشی", "جینا نہیں چاہتا", "جینا نہیں چاہتی",
        ],
        "no_food_water": [
            "کھانا نہیں", "بھوکا", "بھوکی", "پانی نہیں",
        ],
        "medical": [
            "خون بہہ", "خون نکل", "بے ہوش", "بیہوش", "بہت بیمار", "سانس نہیں", "ہڈی ٹوٹ", "زخمی", "چوٹ لگی",
        ],
        "trafficking": [
            "بیچ دیا", "بیچ دی", "مجھے بیچا", "انسانی اسمگلنگ", "اسمگلنگ", "اغوا", "بیگار", "زبردستی کام",
        ],
    },
    "ar": {
        "sos": [
            "ساعد*", "انقذ*", "نجده", "الحقوني", "الحقني", "خطر", "في خطر", "طوارئ", "خايف*",
        ],
        "violence": [
            "ضرب*", "يضرب*", "يعذب*", "تعذيب", "عنف", "يعنف*", "اعتداء", "اعتدى*", "صفع*", "يصفع*", "كفخ*", "رفس*",
            "يرفس*",
        ],
        "sexual_violence": [
            "اغتصب*", "يغتصب*", "اغتصاب", "تحرش*", "يتحرش*", "اعتداء جنسي", "لمسني", "يلمسني", "هتك عرض",
        ],
        "confinement": [
            "{قفلوا|قفل|قفلو|يقفل|يقفلون|مقفل|مقفلين|سكروا|سكر} {علي|علينا|عليه|عليها}", "قفلوني", "حبس*", "محبوس*",
            "حجزوني", "محتجز*", "مسجون*",
            "{ما|ما راح|لا} {اقدر|أقدر|يخلوني|يخليني|خلوني|خلاني|يسمحون لي|تخليني|استطيع} "
            "{اطلع|اخرج|أطلع|أخرج|بالخروج|الخروج}",
            "ممنوع {اطلع|اخرج|من الخروج}", "اخذوا جوالي", "سحبوا جوالي",
        ],
        "threat_to_life": [
            "قتل*", "يقتل*", "بيقتل*", "هدد*", "يهدد*", "تهديد*", "يذبح*", "بذبح*",
        ],
        "self_harm": [
            "{ابي|ابغى|ابغي|اريد|أريد|بدي} {اموت|ان اموت|أموت|موت}", "انتحار", "انتحر*", "اقتل نفسي",
            "{ما|ما راح} {ابي|ابغى} اعيش",
        ],
        "no_food_water": [
            "{ما في|ما فيه|مافي|مافيه|لا يوجد|ما فيش|مافيش} {اكل|أكل|طعام|ماي|ماء|موية|مويه}",
            "{ما|ما راح} {عطوني|يعطوني|يعطيني|عطاني} {اكل|أكل|ماي|ماء}", "ما اكلت", "ما أكلت", "ما كليت", "جوعان*",
            "بدون اكل",
        ],
        "medical": [
            "نزيف", "ينزف", "انزف", "دم كثير", "فاقد الوعي", "فقد الوعي", "مغمى {عليه|عليها}", "اغمى علي", "اغماء",
            "مريض جدا", "مريضه جدا", "ما اقدر اتنفس", "انكسر*", "مكسور*", "اسعاف", "طحت", "صار لي حادث",
        ],
        "trafficking": [
            "باعني", "باعوني", "باعتني", "بيعوني", "اتجار بالبشر", "الاتجار بالبشر", "تهريب", "خطفوني", "خطف*",
            "اختطاف", "عمل قسري", "اجبروني على العمل", "ما اعرف وين انا",
        ],
    },
    "bn": {
        "sos": [
            "বাঁচাও", "বাঁচান", "বিপদ*", "ভয় লাগছে", "bachao", "bachaw", "bachan", "bipod*", "bipad*", "voy lagche",
            "bhoy lagche", "bhoy lagtese",
        ],
        "violence": [
            "মারধর*", "মারে", "মারছে", "মারল", "মারলো", "মেরেছে", "মারতেছে", "মারপিট", "পেটায়", "পিটায়", "পেটাচ্ছে",
            "থাপ্পড়*", "নির্যাতন*", "অত্যাচার*", "mare", "marche", "marse", "marlo", "mereche", "merese", "mardhor",
            "mardhar", "pitay", "petay", "nirjaton", "ottachar", "attachar", "thappor",
        ],
        "sexual_violence": [
            "ধর্ষণ*", "যৌন হয়রানি*", "যৌন নির্যাতন*", "শ্লীলতাহানি*", "গায়ে হাত দেয়", "dhorshon*", "dorshon*",
            "dhorson*", "jouno*", "gaye hat dey", "gaye haat dey",
        ],
        "confinement": [
            "আটকে*", "তালা দিয়ে", "{বাইরে|বাহিরে|দেশে|বাড়ি} যেতে {দেয় না|দেয়না|দেয় না|দিচ্ছে না|দেয় নাই}",
            "বের হতে {দেয় না|দেয়না}", "যেতে দেয় না", "যেতে দেয়না", "বন্দী*", "বন্দি*", "atke*", "atkay*",
            "tala diye", "{baire|bahire|bire|desh e|deshe|bari} jete {dey na|dei na|dayna|deyna|dey nah|dicche na}",
            "ber hote {dey na|deyna|dei na}", "jete {dey na|dei na|deyna}", "bondi",
        ],
        "threat_to_life": [
            "মেরে ফেল*", "খুন*", "হুমকি*", "mere fel*", "khun kor*", "khun kore", "humki", "hmki",
        ],
        "self_harm": [
            "মরে যেতে চাই", "মরতে চাই", "আত্মহত্যা*", "বাঁচতে চাই না", "more jete chai", "morte chai", "attohotta*",
            "attohatya*", "atmohotta*", "bachte chai na", "বাঁচতে {ইচ্ছা|ইচ্ছে} করে না",
            "bachte {icche|iche|ichha|issa} {kore na|korena|hoy na}",
        ],
        "no_food_water": [
            "খাবার {দেয় না|দেয়না|দেয় নাই|দিচ্ছে না|দেয় না}", "খেতে {দেয় না|দেয়না}", "খাবার {নাই|নেই}",
            "না খেয়ে আছি", "ক্ষুধার্ত", "পানি {নেই|নাই}",
            "khabar {dey na|dei na|day na|deyna|dayna|nai|nei|dicche na}", "khete {dey na|dei na|deyna}",
            "na kheye achi", "na khaiya", "pani {nai|nei}",
        ],
        "medical": [
            "রক্ত পড়*", "রক্ত বের*", "অজ্ঞান*", "অনেক অসুস্থ", "খুব অসুস্থ", "শ্বাস নিতে পারছি না", "হাড় ভেঙে*",
            "আহত", "rokto por*", "rokto ber*", "ogyan", "oggan", "ojnan", "onek osustho", "khub osustho", "ahoto",
        ],
        "trafficking": [
            "বিক্রি করে দিয়েছে", "বিক্রি করে দিছে", "বিক্রি করেছে", "আমাকে বিক্রি", "পাচার*", "মানব পাচার*", "অপহরণ*",
            "জোর করে কাজ", "bikri kore {diyeche|dise|diche|dilo}", "amake bikri", "pachar*", "ophoron", "opohoron",
        ],
    },
    "si": {
        "sos": [
            "බේරගන්න", "බේරාගන්න", "බේරගනිං", "බේරගන්න*", "උදව් කරන්න", "අනතුර*", "හදිසි*", "බයයි", "beraganna",
            "bera ganna", "beraaganna", "udaw karanna", "udav karanna", "udaw karapan", "udaw karapalla",
            "help karanna", "mata bayai", "bayai",
        ],
        "violence": [
            "ගහනවා", "ගහනව", "ගැහුවා", "ගැහුව", "ගහලා", "ගහන්නේ", "හිංසා*", "වධ*", "පහර*", "gahanawa", "gahanawaa",
            "gahuwa", "gehuwa", "gahala", "gahanne", "gahuva", "hinsa*", "pahara*",
        ],
        "sexual_violence": [
            "දූෂණය කළා", "දූෂණය කරා", "ස්ත්‍රී දූෂණ*", "ලිංගික හිංසන*", "ලිංගික අතවර*", "අතවර*", "dushanaya",
            "athawara*", "athavara*",
        ],
        "confinement": [
            "හිර කර*", "හිරකර*", "කාමරේ වහලා", "වහලා තියෙන්නේ", "ලොක් කරලා", "lock karala", "hira karala", "hira kara*",
            "{එළියට|එලියට|ගෙදර} යන්න {දෙන්නේ නෑ|දෙන්නෑ|දෙන්නේ නැහැ|දෙන්නෙ නෑ}", "යන්න {දෙන්නේ නෑ|දෙන්නෑ|දෙන්නේ නැහැ}",
            "{eliyata|eliyta|gedara} yanna {denne na|denna na|dennaa|denne naha}", "yanna {denne na|dennaa|denne naha}",
        ],
        "threat_to_life": [
            "මරනවා", "මරන්න", "මරයි", "මරලා දානවා", "තර්ජන*", "maranawa", "maranna", "marai", "marala danawa",
            "tharjana*",
        ],
        "self_harm": [
            "මැරෙන්න {ඕනේ|ඕන|හිතෙනවා}", "මැරෙනවා", "සියදිවි*", "දිවි නසා*", "ජීවත් වෙන්න ඕනේ නෑ",
            "marenna {one|ona|hithenawa}", "marenawa", "siyadivi*",
        ],
        "no_food_water": [
            "කන්න {දුන්නේ නෑ|දෙන්නේ නෑ|දෙන්නෑ|දුන්නෙ නෑ|නෑ}", "කෑම නෑ", "වතුර නෑ",
            "kanna {dunne na|denne na|dennaa|na|naha}", "kama na", "kaama na", "kaama naha", "wathura na",
        ],
        "medical": [
            "ලේ {ගලනවා|යනවා|එනවා}", "සිහිය නැති*", "සිහි නැති*", "ක්ලාන්ත*", "ලොකු අසනීප*", "ගොඩක් අසනීප*", "තුවාල*",
            "හුස්ම ගන්න බෑ", "le {galanawa|yanawa|enawa}", "sihiya nathi*", "godak asanipa*", "thuwala*",
        ],
        "trafficking": [
            "විකුණලා", "විකුණුවා", "මිනිස් ජාවාරම*", "පැහැරගෙන*", "බලහත්කාරයෙන් වැඩ*", "vikunala", "vikunuwa",
            "vikkuwa",
        ],
    },
    "ta": {
        "sos": [
            "காப்பாத்து*", "காப்பாற்று*", "ஆபத்*", "அவசர*", "பயமா இருக்கு", "பயமாக இருக்கிறது", "kapathu*", "kaapathu*",
            "kapaathu*", "kaapaathu*", "kapatu*", "kaapaatu*", "abathu", "aabathu", "apathu", "bayama iruku",
        ],
        "violence": [
            "அடிக்கிற*", "அடிக்கிறா*", "அடிக்கறா*", "அடிச்சா*", "அடிச்சு*", "அடித்தா*", "அடித்து*", "அடிப்பா*",
            "அறைந்தா*", "உதைச்சா*", "கொடுமை*", "சித்திரவதை*", "adikira*", "adikara*", "adichu*", "adicha*", "adipa*",
            "kodumai*",
        ],
        "sexual_violence": [
            "பாலியல் வன்கொடுமை*", "கற்பழி*", "பலாத்கார*", "பாலியல் தொல்லை*", "karpazh*", "karpal*", "balathkar*",
            "paaliyal*", "paliyal*",
        ],
        "confinement": [
            "பூட்டி*", "அடைச்சு வை*", "அடைத்து வை*", "{வெளியே|வெளிய|வீட்டுக்கு|ஊருக்கு} போக {விட*|முடியல*|முடியவில்லை}",
            "போக விடமாட்ட*", "{வெளியே|வெளிய} {விடல*|விடமாட்ட*|விடவில்லை*}", "{veliye|veliya} {vidala*|vidamat*}",
            "{poti|puti|pooti} {vech*|vach*}", "{adaichu|adachu} {vech*|vach*}",
            "{veliye|veliya|vitukku|veetuku|oorukku|uruku} poga {vid*|mudiyala*}", "poga vidamat*",
        ],
        "threat_to_life": [
            "கொன்னு*", "கொல்லுவ*", "கொலை*", "கொல்ல*", "மிரட்டு*", "மிரட்ட*", "konnu*", "kolla*", "kolai*", "miratu*",
            "mirata*",
        ],
        "self_harm": [
            "சாகப்போறேன்", "சாகப் போறேன்", "சாக போறேன்", "சாகணும்", "சாகனும்", "செத்துடுவேன்", "தற்கொலை*", "sakaporen",
            "saaga poren", "saga poren", "saganum", "saaganum", "sethuduven", "thatkolai*", "tharkolai*",
        ],
        "no_food_water": [
            "சாப்பாடு {இல்ல|இல்லை|குடுக்க*|கொடுக்க*}", "சாப்பிட எதுவும் இல்ல*", "பட்டினி*", "தண்ணி இல்ல*",
            "{sapadu|saapadu|sappadu} {ila|ilai|kuduka*|koduka*}", "patini*", "thani ila*",
        ],
        "medical": [
            "ரத்தம் {வருது|கொட்டு*|வருகிறது}", "இரத்தம் {வருது|கொட்டு*|வருகிறது}", "மயக்கம்*", "மயங்கி*",
            "நினைவு இல்லாம*", "ரொம்ப உடம்பு சரியில்ல*", "உடம்பு ரொம்ப சரியில்ல*", "மூச்சு விட முடியல*", "எலும்பு முறி*",
            "காயம்*", "{ratham|raththam|ratam} {varuthu|varudhu|kottu*}", "mayakam*", "mayangi*", "kaayam*", "kayam*",
        ],
        "trafficking": [
            "வித்துட்டா*", "விற்று*", "விற்றுவிட்ட*", "கடத்தி*", "கடத்தல்*", "vithuta*", "vitutanga*", "kadathi*",
            "kadathal*",
        ],
    },
}

# Phrases that contain a danger word but are not about danger; cut out of the message before matching.
SAFE_PHRASES: dict[str, list[str]] = {
    "en": [
        "help me with", "help with", "help me understand", "help me to understand", "help me find", "help me fill",
        "help me check", "help me know", "help me calculate", "help me apply", "help me renew", "help me get my",
        "help me to get my", "kill time", "kill some time", "not in danger", "no danger", "emergency leave", "punch in",
        "punch out", "punch card", "dead tired", "dying to", "phone is dead", "battery is dead", "phone died",
        "{the heat|this heat|work|this job|my job|my back|my head|my feet|my legs|the pain|this work|overtime|the"
        " work} is killing me",
    ],
    "id": ["terpaksa"],
    "th": ["ฆ่าเชื้อ", "ฆ่าแมลง", "ยาฆ่า"],
    "my": ["ဓာတ်ပုံရိုက်", "ပုံရိုက်", "စာရိုက်", "ရုပ်ရှင်ရိုက်", "ရိုက်နှိပ်", "ဗီဒီယိုရိုက်", "ဖုန်းပိတ်ထား", "ဆိုင်ပိတ်ထား"],
    "km": ["រំលោភសិទ្ធិ"],
    "lo": ["ຂ້າມ"],
    "ne": ["पैसा बचाउ*", "paisa bachau*"],
    "hi": ["paisa bacha*", "पैसा बचा*", "paise bacha*"],
}

# Prefixes and endings accepted around whole-word terms (not for ^ and ! terms, nor substring scripts).
AFFIXES: dict[str, dict[str, list[str]]] = {
    "en": {"prefixes": [], "suffixes": ["s", "es", "ed", "d", "ing", "en"]},
    "id": {"prefixes": ["di", "ter", "ke", "me", "mem", "men", "meng", "meny", "pe", "pem", "pen", "peng", "per",
                        "ber", "diper", "memper", "nge", "ng", "se"],
           "suffixes": ["kan", "i", "an", "in", "nya", "ku", "mu", "lah", "kah", "pun"]},
    "ms": {"prefixes": ["di", "ter", "ke", "me", "mem", "men", "meng", "meny", "pe", "pem", "pen", "peng", "per",
                        "ber", "diper", "memper", "kena"],
           "suffixes": ["kan", "i", "an", "nya", "ku", "mu", "lah", "kah", "pun"]},
    "tl": {"prefixes": ["na", "ma", "nag", "mag", "pag", "pina", "ipina", "ipa", "i", "ni", "naka", "maka", "ka",
                        "ipag", "pinag", "nakaka"],
           "suffixes": ["in", "an", "hin", "han", "nin"]},
    "ar": {"prefixes": ["و", "ف", "ب", "ل", "ال", "وال", "بال", "فال", "لل", "ول", "وب", "س", "وس"],
           "suffixes": []},
}

_NO_SPACE_SCRIPTS = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff\uaa60-\uaa7f\ua9e0-\ua9ff"
_NO_SPACE_CHAR = re.compile(f"[{_NO_SPACE_SCRIPTS}]")
_NO_SPACE_GAP = re.compile(f"(?<=[{_NO_SPACE_SCRIPTS}]) +(?=[{_NO_SPACE_SCRIPTS}])")
_MYANMAR = re.compile("[\u1000-\u109f]")
_MYANMAR_ZERO_AS_WA = re.compile("\u1040(?=[\u1000-\u1021\u102b-\u103e])")
_REDUPLICATION = re.compile(r"\b([a-z]{2,})2\b")
_REPEATS = re.compile(r"([^\W\d_])\1+")
_ELONGATED = re.compile(r"([^\W\d_])\1\1")
_BRACES = re.compile(r"\{([^{}]*)\}")

_DELETE = {
    "'", "\u2019", "\u2018", "\u02bc", "`", "\u00b4",           # apostrophes: "can't" -> "cant"
    "\u0640",                                                    # Arabic tatweel
    "\u0901", "\u0902", "\u093c", "\u0981", "\u09bc",            # Devanagari/Bengali candrabindu, anusvara, nukta
}
_REPLACE = {
    "\u0111": "d",                                               # Vietnamese đ
    "\U0001f198": " sos ",                                       # 🆘
    "\u064a": "\u06cc", "\u0649": "\u06cc", "\u0626": "\u06cc",  # Arabic/Urdu yeh forms
    "\u0643": "\u06a9",                                          # kaf
    "\u06c1": "\u0647", "\u06c0": "\u0647", "\u0629": "\u0647",  # heh forms, teh marbuta
    "\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627",  # alef forms
    "\u0624": "\u0648",                                          # waw with hamza
}


def _fold(code: int) -> str | None:
    """What one character becomes in a normalised message ("" deletes it)."""
    ch = chr(code)
    if ch in _DELETE:
        return ""
    if ch in _REPLACE:
        return _REPLACE[ch]
    if 0x0300 <= code <= 0x036F or 0x064B <= code <= 0x065F or code == 0x0670:
        return ""                                                # Latin combining accents, Arabic harakat
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""                                                # zero-width joiners, bidi marks, soft hyphen
    if category == "Nd":
        return str(unicodedata.decimal(ch, 0))
    if category[0] in "PSZ" or category in ("Cc", "Co", "Cn", "Cs"):
        return " "
    if category[0] == "L" and "LATIN" in unicodedata.name(ch, ""):
        stripped = "".join(c for c in unicodedata.normalize("NFD", ch) if not 0x0300 <= ord(c) <= 0x036F)
        return stripped or ch
    return ch


class _FoldTable(dict):
    """A str.translate table filled in lazily, one character at a time."""

    def __missing__(self, code: int) -> str | None:
        value = _fold(code)
        if len(self) < 65536:  # random or hostile text must not grow it without bound
            self[code] = value
        return value


_TABLE = _FoldTable()


def normalise(text: str) -> str:
    """The form both messages and lexicon terms are compared in."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _MYANMAR_ZERO_AS_WA.sub("\u101d", text)               # ၀ typed for ဝ inside Burmese words
    text = text.replace("\u103a\u1037", "\u1037\u103a")          # one storage order for asat + dot below
    text = text.translate(_TABLE)
    text = _REDUPLICATION.sub(r"\1 \1", text)                    # "tlg2" -> "tlg tlg", "laki2" -> "laki laki"
    text = _REPEATS.sub(r"\1", text)                             # "heeelp" -> "help", "bleeding" -> "bleding"
    text = " ".join(text.split())
    return _NO_SPACE_GAP.sub("", text)


def expand(term: str) -> list[str]:
    """``{a|b} c`` -> ``["a c", "b c"]``."""
    parts = _BRACES.split(term)
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return ["".join(combo) for combo in itertools.product(*choices)]


@dataclass(frozen=True, slots=True)
class _Entry:
    language: str
    category: str
    term: str


def _trie(words: list[str]) -> str:
    """One regex alternation for many literals, as a trie: fast, and prefers the longest."""
    root: dict = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(ch) + walk(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?"
        return body

    return walk(root)


def _alternation(items: list[str]) -> str:
    items = sorted({normalise(i) for i in items if normalise(i)}, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(i) for i in items) + ")" if items else ""


class _Matcher:
    """One compiled pattern for a set of terms: whole words (with affixes), stems, and substrings."""

    def __init__(self, words: dict[str, object], stems: dict[str, object], substrings: dict[str, object],
                 prefixes: list[str] | tuple[str, ...] = (), suffixes: list[str] | tuple[str, ...] = ()):
        self.words, self.stems, self.substrings = words, stems, substrings
        prefix = _alternation(list(prefixes))
        suffix = _alternation(list(suffixes))
        prefix = prefix + "?" if prefix else ""
        suffix = suffix + "?" + suffix + "?" if suffix else ""
        spaced = []
        if words:
            spaced.append(f"(?P<w>{_trie(list(words))}){suffix}(?!\\S)")
        if stems:
            spaced.append(f"(?P<s>{_trie(list(stems))})")
        branches = []
        if spaced:
            branches.append(f"(?<!\\S){prefix}(?:{'|'.join(spaced)})")
        if substrings:
            branches.append(f"(?P<n>{_trie(list(substrings))})")
        self.pattern = re.compile("|".join(branches)) if branches else None

    def finditer(self, text: str):
        """(start, end, value) for each match."""
        if self.pattern is None:
            return
        tables = {"w": self.words, "s": self.stems, "n": self.substrings}
        for m in self.pattern.finditer(text):
            yield m.start(), m.end(), tables[m.lastgroup][m.group(m.lastgroup)]

    def sub(self, text: str) -> str:
        return self.pattern.sub(" ", text) if self.pattern is not None else text


def _split_terms(terms: list[tuple[str, object]]):
    """Sort (term, value) pairs into whole words, stems, substrings, alone and shouted terms, normalised."""
    words: dict[str, object] = {}
    stems: dict[str, object] = {}
    substrings: dict[str, object] = {}
    alone: dict[str, tuple[object, bool]] = {}
    for raw, value in terms:
        for term in expand(raw):
            marker = term[:1] if term[:1] in "^!" else ""
            body = term[len(marker):]
            stem = body.endswith("*")
            body = normalise(body.rstrip("*"))
            if not body:
                continue
            if marker:
                alone.setdefault(body, (value, marker == "!"))
            elif _NO_SPACE_CHAR.search(body):
                substrings.setdefault(body, value)
            elif stem:
                stems.setdefault(body, value)
            else:
                words.setdefault(body, value)
    return words, stems, substrings, alone


# Menu answers (digits, spaces, punctuation) are remembered: they are most of what workers send, reading one
# costs as much as reading a sentence, and unlike a sentence they say nothing personal to keep in memory.
_MENU_ANSWER = re.compile(r"[\d\s.,;:#*+\-()]{1,16}", re.ASCII)


class Triage:
    """Reads a message and says whether it is urgent, and why."""

    def __init__(self) -> None:
        self.languages = tuple(LEXICON)
        self.matchers: list[_Matcher] = []
        self.alone: dict[str, tuple[_Entry, bool]] = {}
        for language, categories in LEXICON.items():
            terms = []
            for category, entries in categories.items():
                if category not in CATEGORIES:
                    raise ValueError(f"lexicon {language}: unknown category {category!r}")
                for raw in entries:
                    for term in expand(raw):
                        terms.append((term, _Entry(language, category, term.lstrip("^!").rstrip("*"))))
            words, stems, substrings, alone = _split_terms(terms)
            affixes = AFFIXES.get(language, {})
            self.matchers.append(_Matcher(words, stems, substrings, affixes.get("prefixes", []),
                                          affixes.get("suffixes", [])))
            for body, value in alone.items():
                self.alone.setdefault(body, value)
        safe = [(phrase, None) for phrases in SAFE_PHRASES.values() for phrase in phrases]
        words, stems, substrings, _ = _split_terms(safe)
        self.safe = _Matcher(words, stems, substrings)
        self.rank = {category: i for i, category in enumerate(PRIORITY)}
        with warnings.catch_warnings():  # myanmartools reads its model with a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            self.zawgyi = ZawgyiDetector()

    def assess(self, text: str) -> Assessment:
        if not text or not isinstance(text, str):
            return NOT_URGENT
        if _MENU_ANSWER.fullmatch(text):  # "1", "2 3", "#": most messages; what they say is no secret
            return self._assess_menu_answer(text)
        return self._assess(text)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Triage lives as long as the process
    def _assess_menu_answer(self, text: str) -> Assessment:
        return self._assess(text)

    def _assess(self, text: str) -> Assessment:
        best: tuple | None = None
        for form in self._forms(text):
            found = self._assess_form(form, text)
            if found is not None and (best is None or found[0] < best[0]):
                best = found
        if best is None:
            return NOT_URGENT
        entry = best[1]
        return Assessment(True, entry.category, entry.language, entry.term)

    def _forms(self, text: str) -> list[str]:
        """The message, and its Unicode reading if it may be Zawgyi-encoded Burmese."""
        if not _MYANMAR.search(text):
            return [text]
        try:
            probability = self.zawgyi.get_zawgyi_probability(text)
            if math.isnan(probability) or probability <= 0.05:
                return [text]
            converted = zg_to_unicode(text, force=True)
            return [converted] if probability >= 0.95 else [text, converted]
        except Exception:  # a converter bug must never hide a message: read it as it came
            return [text]

    def _assess_form(self, raw: str, original: str) -> tuple | None:
        text = normalise(raw)
        if not text:
            return None
        found = self._alone(text, original)
        if found is not None:
            return (self.rank[found.category], -1, 0, 0), found
        text = self.safe.sub(text)
        best = None
        for index, matcher in enumerate(self.matchers):
            for start, end, entry in matcher.finditer(text):
                # most severe category, then earliest, then longest (the most specific language), then lexicon order
                key = (self.rank[entry.category], start, start - end, index)
                if best is None or key < best[0]:
                    best = key, entry
        return best

    def _alone(self, text: str, original: str) -> _Entry | None:
        """^ and ! terms: the whole message is the term, perhaps repeated ("tolong tolong")."""
        tokens = text.split()
        if len(tokens) > 8:
            return None
        deduped = [t for i, t in enumerate(tokens) if i == 0 or t != tokens[i - 1]]
        hit = self.alone.get(" ".join(deduped))
        if hit is None:
            return None
        entry, needs_shout = hit
        if needs_shout:
            folded = unicodedata.normalize("NFKC", original).casefold()
            shouted = "!" in folded or len(deduped) < len(tokens) or _ELONGATED.search(folded) is not None
            if not shouted:
                return None
        return entry
