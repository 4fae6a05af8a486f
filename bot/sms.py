"""SMS encoding: segment counting, GSM-7 normalisation and pagination.

``segment_info`` reproduces what Twilio's open-source message segment calculator
(TwilioDevEd/message-segment-calculator, npm ``sms-segments-calculator``) reports for a
body sent as is (encoding "auto", Smart Encoding off):

* GSM-7 when every character is in the calculator's GSM-7 map (basic table: 7 bits,
  extension table: ESC + char, 14 bits), otherwise UCS-2 for the whole message, where
  every UTF-16 code unit costs 16 bits.
* A segment holds 1120 bits. Once a message needs a second segment, every segment
  carries a 48-bit user data header, which leaves 153 septets or 67 UTF-16 units.
* The calculator places whole grapheme clusters: a cluster (so an ESC pair, a surrogate
  pair, an emoji sequence, a letter with its marks) that does not fit in what is left of
  a segment moves to the next one. Clusters are split the way its ``grapheme-splitter``
  1.0.4 dependency splits them (UAX #29 rules over Unicode 10.0.0 data, with that
  library's quirks), except that CR LF counts as two characters.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM_REPLACEMENTS",
    "Segments",
    "fit",
    "gsm_normalise",
    "is_gsm7",
    "paginate",
    "segment_info",
]

Encoding = Literal["GSM-7", "UCS-2"]

#: Characters of the GSM 03.38 default alphabet that the calculator maps (one septet each).
GSM7_BASIC: frozenset[str] = frozenset(
    "\n\r !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
    "¡£¤¥§¿ÄÅÆÉÑÖØÜßàäåæÇèéìñòöøùüΓΔΘΛΞΠΣΦΨΩ"
)
#: Characters of the GSM 03.38 extension table (ESC + char, two septets each).
GSM7_EXTENSION: frozenset[str] = frozenset("\f[\\]^{|}~€")
_GSM7 = GSM7_BASIC | GSM7_EXTENSION

_SEGMENT_BITS = 1120  # 140 octets
_UDH_BITS = 48  # 6-octet concatenation header, once a message has 2+ segments


@dataclass(frozen=True, slots=True)
class Segments:
    """What a message body costs: its encoding, segment count and size.

    ``units`` is septets for GSM-7 (extension characters count 2) and UTF-16 code units
    for UCS-2.
    """

    encoding: Encoding
    segments: int
    units: int


# --- grapheme clusters as the calculator splits them -------------------------------------

# Grapheme_Cluster_Break values (Unicode 10.0.0, the data grapheme-splitter 1.0.4 carries).
_OTHER, _CR, _LF, _CONTROL, _EXTEND, _RI, _PREPEND, _SPACING_MARK = range(8)
_L, _V, _T, _LV, _LVT, _E_BASE, _E_MODIFIER, _ZWJ, _GLUE_AFTER_ZWJ, _E_BASE_GAZ = range(8, 18)

# Code point ranges (hex, inclusive) from Unicode 10.0.0 GraphemeBreakProperty.txt;
# Hangul syllables (LV/LVT) are computed, everything not listed is Other.
_GCB_RANGES: dict[int, str] = {
    _CR: "D",
    _LF: "A",
    _CONTROL: """
0-9 B-C E-1F 7F-9F AD 61C 180E 200B 200E-200F 2028-202E 2060-206F D800-DFFF FEFF FFF0-FFFB
1BCA0-1BCA3 1D173-1D17A E0000-E001F E0080-E00FF E01F0-E0FFF""",
    _PREPEND: "600-605 6DD 70F 8E2 D4E 110BD 111C2-111C3 11A3A 11A86-11A89 11D46",
    _L: "1100-115F A960-A97C",
    _V: "1160-11A7 D7B0-D7C6",
    _T: "11A8-11FF D7CB-D7FB",
    _ZWJ: "200D",
    _RI: "1F1E6-1F1FF",
    _E_MODIFIER: "1F3FB-1F3FF",
    _E_BASE_GAZ: "1F466-1F469",
    _GLUE_AFTER_ZWJ: """
2640 2642 2695-2696 2708 2764 1F308 1F33E 1F373 1F393 1F3A4 1F3A8 1F3EB 1F3ED 1F48B 1F4BB-1F4BC
1F527 1F52C 1F5E8 1F680 1F692""",
    _E_BASE: """
261D 26F9 270A-270D 1F385 1F3C2-1F3C4 1F3C7 1F3CA-1F3CC 1F442-1F443 1F446-1F450 1F46E 1F470-1F478
1F47C 1F481-1F483 1F485-1F487 1F4AA 1F574-1F575 1F57A 1F590 1F595-1F596 1F645-1F647 1F64B-1F64F
1F6A3 1F6B4-1F6B6 1F6C0 1F6CC 1F918-1F91C 1F91E-1F91F 1F926 1F930-1F939 1F93D-1F93E 1F9D1-1F9DD""",
    _EXTEND: """
300-36F 483-489 591-5BD 5BF 5C1-5C2 5C4-5C5 5C7 610-61A 64B-65F 670 6D6-6DC 6DF-6E4 6E7-6E8 6EA-6ED
711 730-74A 7A6-7B0 7EB-7F3 816-819 81B-823 825-827 829-82D 859-85B 8D4-8E1 8E3-902 93A 93C 941-948
94D 951-957 962-963 981 9BC 9BE 9C1-9C4 9CD 9D7 9E2-9E3 A01-A02 A3C A41-A42 A47-A48 A4B-A4D A51
A70-A71 A75 A81-A82 ABC AC1-AC5 AC7-AC8 ACD AE2-AE3 AFA-AFF B01 B3C B3E-B3F B41-B44 B4D B56-B57
B62-B63 B82 BBE BC0 BCD BD7 C00 C3E-C40 C46-C48 C4A-C4D C55-C56 C62-C63 C81 CBC CBF CC2 CC6 CCC-CCD
CD5-CD6 CE2-CE3 D00-D01 D3B-D3C D3E D41-D44 D4D D57 D62-D63 DCA DCF DD2-DD4 DD6 DDF E31 E34-E3A
E47-E4E EB1 EB4-EB9 EBB-EBC EC8-ECD F18-F19 F35 F37 F39 F71-F7E F80-F84 F86-F87 F8D-F97 F99-FBC FC6
102D-1030 1032-1037 1039-103A 103D-103E 1058-1059 105E-1060 1071-1074 1082 1085-1086 108D 109D
135D-135F 1712-1714 1732-1734 1752-1753 1772-1773 17B4-17B5 17B7-17BD 17C6 17C9-17D3 17DD 180B-180D
1885-1886 18A9 1920-1922 1927-1928 1932 1939-193B 1A17-1A18 1A1B 1A56 1A58-1A5E 1A60 1A62 1A65-1A6C
1A73-1A7C 1A7F 1AB0-1ABE 1B00-1B03 1B34 1B36-1B3A 1B3C 1B42 1B6B-1B73 1B80-1B81 1BA2-1BA5 1BA8-1BA9
1BAB-1BAD 1BE6 1BE8-1BE9 1BED 1BEF-1BF1 1C2C-1C33 1C36-1C37 1CD0-1CD2 1CD4-1CE0 1CE2-1CE8 1CED 1CF4
1CF8-1CF9 1DC0-1DF9 1DFB-1DFF 200C 20D0-20F0 2CEF-2CF1 2D7F 2DE0-2DFF 302A-302F 3099-309A A66F-A672
A674-A67D A69E-A69F A6F0-A6F1 A802 A806 A80B A825-A826 A8C4-A8C5 A8E0-A8F1 A926-A92D A947-A951
A980-A982 A9B3 A9B6-A9B9 A9BC A9E5 AA29-AA2E AA31-AA32 AA35-AA36 AA43 AA4C AA7C AAB0 AAB2-AAB4
AAB7-AAB8 AABE-AABF AAC1 AAEC-AAED AAF6 ABE5 ABE8 ABED FB1E FE00-FE0F FE20-FE2F FF9E-FF9F 101FD
102E0 10376-1037A 10A01-10A03 10A05-10A06 10A0C-10A0F 10A38-10A3A 10A3F 10AE5-10AE6 11001
11038-11046 1107F-11081 110B3-110B6 110B9-110BA 11100-11102 11127-1112B 1112D-11134 11173
11180-11181 111B6-111BE 111CA-111CC 1122F-11231 11234 11236-11237 1123E 112DF 112E3-112EA
11300-11301 1133C 1133E 11340 11357 11366-1136C 11370-11374 11438-1143F 11442-11444 11446 114B0
114B3-114B8 114BA 114BD 114BF-114C0 114C2-114C3 115AF 115B2-115B5 115BC-115BD 115BF-115C0
115DC-115DD 11633-1163A 1163D 1163F-11640 116AB 116AD 116B0-116B5 116B7 1171D-1171F 11722-11725
11727-1172B 11A01-11A06 11A09-11A0A 11A33-11A38 11A3B-11A3E 11A47 11A51-11A56 11A59-11A5B
11A8A-11A96 11A98-11A99 11C30-11C36 11C38-11C3D 11C3F 11C92-11CA7 11CAA-11CB0 11CB2-11CB3
11CB5-11CB6 11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 16AF0-16AF4 16B30-16B36 16F8F-16F92
1BC9D-1BC9E 1D165 1D167-1D169 1D16E-1D172 1D17B-1D182 1D185-1D18B 1D1AA-1D1AD 1D242-1D244
1DA00-1DA36 1DA3B-1DA6C 1DA75 1DA84 1DA9B-1DA9F 1DAA1-1DAAF 1E000-1E006 1E008-1E018 1E01B-1E021
1E023-1E024 1E026-1E02A 1E8D0-1E8D6 1E944-1E94A E0020-E007F E0100-E01EF
""",
    _SPACING_MARK: """
903 93B 93E-940 949-94C 94E-94F 982-983 9BF-9C0 9C7-9C8 9CB-9CC A03 A3E-A40 A83 ABE-AC0 AC9 ACB-ACC
B02-B03 B40 B47-B48 B4B-B4C BBF BC1-BC2 BC6-BC8 BCA-BCC C01-C03 C41-C44 C82-C83 CBE CC0-CC1 CC3-CC4
CC7-CC8 CCA-CCB D02-D03 D3F-D40 D46-D48 D4A-D4C D82-D83 DD0-DD1 DD8-DDE DF2-DF3 E33 EB3 F3E-F3F F7F
1031 103B-103C 1056-1057 1084 17B6 17BE-17C5 17C7-17C8 1923-1926 1929-192B 1930-1931 1933-1938
1A19-1A1A 1A55 1A57 1A6D-1A72 1B04 1B35 1B3B 1B3D-1B41 1B43-1B44 1B82 1BA1 1BA6-1BA7 1BAA 1BE7
1BEA-1BEC 1BEE 1BF2-1BF3 1C24-1C2B 1C34-1C35 1CE1 1CF2-1CF3 1CF7 A823-A824 A827 A880-A881 A8B4-A8C3
A952-A953 A983 A9B4-A9B5 A9BA-A9BB A9BD-A9C0 AA2F-AA30 AA33-AA34 AA4D AAEB AAEE-AAEF AAF5 ABE3-ABE4
ABE6-ABE7 ABE9-ABEA ABEC 11000 11002 11082 110B0-110B2 110B7-110B8 1112C 11182 111B3-111B5
111BF-111C0 1122C-1122E 11232-11233 11235 112E0-112E2 11302-11303 1133F 11341-11344 11347-11348
1134B-1134D 11362-11363 11435-11437 11440-11441 11445 114B1-114B2 114B9 114BB-114BC 114BE 114C1
115B0-115B1 115B8-115BB 115BE 11630-11632 1163B-1163C 1163E 116AC 116AE-116AF 116B6 11720-11721
11726 11A07-11A08 11A39 11A57-11A58 11A97 11C2F 11C3E 11CA9 11CB1 11CB4 16F51-16F7E 1D166 1D16D
""",
}


def _build_gcb_table() -> tuple[list[int], list[int], list[int]]:
    rows: list[tuple[int, int, int]] = []
    for prop, spec in _GCB_RANGES.items():
        for item in spec.split():
            first, _, last = item.partition("-")
            rows.append((int(first, 16), int(last or first, 16), prop))
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


_GCB_STARTS, _GCB_ENDS, _GCB_PROPS = _build_gcb_table()


@lru_cache(maxsize=8192)
def _gcb(char: str) -> int:
    """Grapheme_Cluster_Break property of one code point (Unicode 10.0.0)."""
    cp = ord(char)
    if 0xAC00 <= cp <= 0xD7A3:
        return _LV if (cp - 0xAC00) % 28 == 0 else _LVT
    i = bisect.bisect_right(_GCB_STARTS, cp) - 1
    if i >= 0 and cp <= _GCB_ENDS[i]:
        return _GCB_PROPS[i]
    return _OTHER


def _last_index(seq: list[int], value: int) -> int:
    for i in range(len(seq) - 1, -1, -1):
        if seq[i] == value:
            return i
    return -1


def _is_break(cluster: list[int], nxt: int) -> bool:
    """Whether grapheme-splitter 1.0.4 starts a new cluster before ``nxt``.

    ``cluster`` holds the properties of the cluster so far. The rules are UAX #29's
    (GB3-GB13, Unicode 10) in the library's order, including its two look-behind tests,
    which for instance break after a flag followed by two combining marks.
    """
    seq = [*cluster, nxt]
    prev = seq[-2]
    start = seq[0]
    k = _last_index(seq, _E_MODIFIER)
    if k > 1 and all(p == _EXTEND for p in seq[1:k]) and start not in (_EXTEND, _E_BASE, _E_BASE_GAZ):
        return True
    k = _last_index(seq, _RI)
    if k > 0 and all(p == _RI for p in seq[1:k]) and prev not in (_PREPEND, _RI):
        return True
    if prev == _CR and nxt == _LF:  # GB3
        return False
    if prev in (_CONTROL, _CR, _LF) or nxt in (_CONTROL, _CR, _LF):  # GB4, GB5
        return True
    if prev == _L and nxt in (_L, _V, _LV, _LVT):  # GB6
        return False
    if prev in (_LV, _V) and nxt in (_V, _T):  # GB7
        return False
    if prev in (_LVT, _T) and nxt == _T:  # GB8
        return False
    if nxt in (_EXTEND, _ZWJ, _SPACING_MARK) or prev == _PREPEND:  # GB9, GB9a, GB9b
        return False
    if nxt == _E_MODIFIER:  # GB10, as the library reads it: at most one Extend in between
        k = _last_index(seq, _EXTEND)
        base = k - 1 if k >= 0 else len(seq) - 2
        if base >= 0 and seq[base] in (_E_BASE, _E_BASE_GAZ) and all(p == _EXTEND for p in seq[base + 1 : -1]):
            return False
    if prev == _ZWJ and nxt in (_GLUE_AFTER_ZWJ, _E_BASE_GAZ):  # GB11
        return False
    if _RI in seq[1:-1]:  # GB12, GB13
        return True
    return not (prev == _RI and nxt == _RI)


def _graphemes(text: str) -> list[str]:
    """Split ``text`` into the calculator's characters (CR LF counts as two)."""
    if text.isascii():  # ASCII is Control, CR, LF or Other: a break between every two (CR LF counts as two)
        return list(text)
    return _clusters(text)


def _clusters(text: str) -> list[str]:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        cluster = [_gcb(text[i])]
        j = i + 1
        while j < n:
            prop = _gcb(text[j])
            if _is_break(cluster, prop):
                break
            cluster.append(prop)
            j += 1
        piece = text[i:j]
        if piece == "\r\n":
            out += ["\r", "\n"]
        else:
            out.append(piece)
        i = j
    return out


# --- segments ----------------------------------------------------------------------------


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` is in the GSM-7 basic or extension table."""
    return all(ch in _GSM7 for ch in text)


def _layout(text: str) -> tuple[Encoding, list[list[str]]]:
    """Place the calculator's characters into segments the way the calculator does."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        # Surrogate code points (only from "surrogatepass" decoding): pair them as UTF-16 does.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    graphemes = _graphemes(text)
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    if encoding == "GSM-7":
        sizes = [14 if g in GSM7_EXTENSION else 7 for g in graphemes]
    else:
        sizes = [16 * _utf16_len(g) for g in graphemes]
    segments: list[list[int]] = [[]]  # indices into graphemes
    used = [0]  # bits used per segment, headers included
    for index, size in enumerate(sizes):
        if _SEGMENT_BITS - used[-1] < size:
            moved: list[int] = []
            if len(segments) == 1:
                # The first segment gets its header now; whatever no longer fits moves on.
                used[0] += _UDH_BITS
                while used[0] > _SEGMENT_BITS:
                    last = segments[0].pop()
                    used[0] -= sizes[last]
                    moved.insert(0, last)
            segments.append(moved)
            used.append(_UDH_BITS + sum(sizes[i] for i in moved))
        segments[-1].append(index)
        used[-1] += size
    return encoding, [[graphemes[i] for i in segment] for segment in segments]


# The bot sends the same menus and facts again and again: the exact (and costly) Unicode work is done once
# per distinct text. Results are immutable; the caches are bounded.
@lru_cache(maxsize=8192)
def segment_info(text: str) -> Segments:
    """Encoding, segment count and size of ``text`` sent as is (Twilio's calculator)."""
    encoding, segments = _layout(text)
    extension = sum(1 for ch in text if ch in GSM7_EXTENSION)
    units = len(text) + extension if encoding == "GSM-7" else _utf16_len(text)
    return Segments(encoding=encoding, segments=len(segments), units=units)


# --- GSM-7 normalisation -----------------------------------------------------------------

#: Characters replaced by ``gsm_normalise``: each has a plain GSM-7 equivalent.
GSM_REPLACEMENTS: Mapping[str, str] = MappingProxyType(
    {
        # double quotes
        **dict.fromkeys("«»“”„‟″‶ʺˮ❝❞〝〞〟", '"'),
        # single quotes, apostrophes, primes, accents used as apostrophes
        **dict.fromkeys("‘’‚‛′‵‹›ʹʻʼʽˈˊˋ´`❛❜", "'"),
        # hyphens, dashes, minus, bullets
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\ufe58\ufe63•‣◦", "-"),
        "\u00ad": "",  # soft hyphen
        "…": "...",
        "‥": "..",
        "‼": "!!",
        "⁇": "??",
        "⁈": "?!",
        "⁉": "!?",
        "⁄": "/",
        "∕": "/",
        "÷": "/",
        "¼": "1/4",
        "½": "1/2",
        "¾": "3/4",
        # spaces: tab, no-break, Ogham, en/em/thin/hair..., narrow no-break, math, ideographic
        **dict.fromkeys(
            "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "
        ),
        # invisible: zero width space, word joiner, byte order mark
        **dict.fromkeys("\u200b\u2060\ufeff", ""),
        # line and paragraph separators, next line
        "\u2028": "\n",
        "\u2029": "\n",
        "\u0085": "\n",
        # full-width ASCII (the full-width grave accent becomes an apostrophe)
        **{chr(cp): chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F) if cp != 0xFF40},
        "\uff40": "'",
    }
)


def gsm_normalise(text: str) -> str:
    """Replace characters that have a plain GSM-7 equivalent (like Twilio's Smart Encoding).

    Typographic quotes, dashes, ellipsis, Unicode spaces, full-width forms and the like
    become their GSM-7 spelling, and a letter written with combining marks becomes its
    precomposed form when that form is GSM-7 (``e`` + U+0301 -> ``é``). Everything else
    is left as it is.
    """
    out: list[str] = []
    for cluster in _graphemes(text):
        if len(cluster) > 1 or cluster not in _GSM7:
            composed = unicodedata.normalize("NFC", cluster)
            if composed != cluster and is_gsm7(composed):
                out.append(composed)
                continue
        out.append("".join(GSM_REPLACEMENTS.get(ch, ch) for ch in cluster))
    return "".join(out)


@lru_cache(maxsize=8192)
def fit(text: str) -> str:
    """``text`` as the bot sends it: normalised if that makes it all GSM-7, else unchanged."""
    normalised = gsm_normalise(text)
    return normalised if is_gsm7(normalised) else text


# --- pagination --------------------------------------------------------------------------

_WORD, _LINE, _PARAGRAPH = 1, 2, 3
_ZWSP = "\u200b"


def _attaches(char: str) -> bool:
    """True for a code point that belongs to the character before it (marks, joiners...)."""
    cp = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Mc", "Me")
        or unicodedata.combining(char) != 0
        or cp in (0x200C, 0x200D)
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # emoji tag sequences
    )


def _is_virama(char: str) -> bool:
    return unicodedata.combining(char) == 9


def _atoms(text: str) -> list[str]:
    """Units a page break never splits: the calculator's characters, further glued.

    A cluster is glued to the one before it when it starts with a mark or joiner (marks
    the Unicode 10 rules do not attach, such as Burmese U+102C, or ones added to Unicode
    since), when the one before ends with a ZWJ, or when it starts with a letter right
    after a virama (a conjunct).
    """
    atoms: list[str] = []
    for cluster in _graphemes(text):
        if atoms and (
            _attaches(cluster[0])
            or atoms[-1][-1] == "\u200d"
            or (_is_virama(atoms[-1][-1]) and unicodedata.category(cluster[0]).startswith("L"))
        ):
            atoms[-1] += cluster
        elif cluster == "\n" and atoms and atoms[-1] == "\r":
            atoms[-1] = "\r\n"
        else:
            atoms.append(cluster)
    return atoms


def _is_gap(atom: str) -> bool:
    return all(ch.isspace() or ch == _ZWSP for ch in atom)


def _gap_level(gap: str) -> int:
    breaks = gap.count("\n") + gap.count("\r") - gap.count("\r\n") + gap.count("\u2028")
    breaks += 2 * gap.count("\u2029")
    return _PARAGRAPH if breaks >= 2 else _LINE if breaks == 1 else _WORD


def _strip(atoms: list[str]) -> list[str]:
    start, end = 0, len(atoms)
    while start < end and _is_gap(atoms[start]):
        start += 1
    while end > start and _is_gap(atoms[end - 1]):
        end -= 1
    return atoms[start:end]


def _furthest(candidates: list[int], fits: Callable[[int], bool]) -> int | None:
    """Largest candidate for which ``fits`` holds; ``fits`` only turns false as k grows."""
    lo, hi, best = 0, len(candidates) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(candidates[mid]):
            best = candidates[mid]
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def paginate(text: str, budget: int, more_hint: str) -> list[str]:
    """Split ``text`` into SMS pages of at most ``budget`` segments each (see :func:`_paginate`)."""
    return list(_paginate(text, budget, more_hint))


@lru_cache(maxsize=8192)
def _paginate(text: str, budget: int, more_hint: str) -> tuple[str, ...]:
    """Split ``text`` into the SMS pages to send, each costing at most ``budget`` segments.

    Every page but the last ends with ``more_hint`` on a line of its own (nothing is added
    when the hint is empty), and the hint counts in its cost. Pages break at a blank line,
    else at a line end, else between words, else between characters; a blank-line or line
    break is taken only when it fills at least half of what a word break would. A surrogate
    pair, an emoji sequence or a letter with its combining marks is never split. The text
    of each page is stripped (whitespace that carries a combining mark counts as a
    character); empty text gives ``[""]``. Raises ``ValueError`` when even one character
    and the hint do not fit the budget.
    """
    if budget < 1:
        raise ValueError("budget must be at least 1 segment")
    suffix = "\n" + more_hint if more_hint else ""
    # Every atom costs at least one septet or unit, so no page holds more atoms than this.
    most = 160 if budget == 1 else 153 * budget
    atoms = _strip(_atoms(text))
    pages: list[str] = []
    while atoms:
        if len(atoms) <= most and segment_info(whole := "".join(atoms)).segments <= budget:
            pages.append(whole)
            break

        def fits(k: int, atoms: list[str] = atoms) -> bool:
            return segment_info("".join(atoms[:k]) + suffix).segments <= budget

        # Break opportunities: before each run of whitespace, with the run's level.
        levels: dict[int, int] = {}
        k = 0
        while k <= most and k < len(atoms):
            if _is_gap(atoms[k]):
                end = k
                while end < len(atoms) and _is_gap(atoms[end]):
                    end += 1
                levels[k] = _gap_level("".join(atoms[k:end]))
                k = end
            else:
                k += 1
        word_cut = _furthest(sorted(levels), fits)
        cut = word_cut
        if word_cut is not None:
            word_len = len("".join(atoms[:word_cut]))
            for level in (_PARAGRAPH, _LINE):
                candidate = _furthest(sorted(k for k, v in levels.items() if v >= level), fits)
                if candidate is not None and 2 * len("".join(atoms[:candidate])) >= word_len:
                    cut = candidate
                    break
        else:
            cut = _furthest(list(range(1, min(len(atoms), most + 1))), fits)
            if cut is None:
                raise ValueError(f"budget of {budget} segment(s) cannot hold one character and the hint")
        pages.append("".join(_strip(atoms[:cut])) + suffix)
        atoms = _strip(atoms[cut:])
    return tuple(pages) or ("",)
