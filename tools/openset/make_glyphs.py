#!/usr/bin/python3
"""Generate the open-set glyph benchmark: printed Hangul syllables, one class per syllable.

Writes, under --out DIR (the layout src/dualtune/data/glyph_benchmark.h checks):

    DIR/<split>/<class_hex>/<n>.png   32x32 8-bit grayscale, black glyph on white
    DIR/<split>/index.csv             path,class,char,face,aug,scale,angle,dx,dy,blur,noise
    DIR/manifest.json                 faces, counts, splits, seed, params, pixel_stats
    DIR/contact.png                   test images (aug 0), faces x classes

with <split> in train-old, train-new, test and <class_hex> the code point in lower-case
hex (ac00 = 가). Classes: the KS X 1001 syllables that at least --min-faces faces draw,
shuffled by numpy default_rng(seed).permutation; train-old = the first --n-old,
train-new = the first --n-new (train-old's files are byte copies of train-new's),
test = the next --n-test (open set: no model trains on them).

Every image has its own generator, default_rng([seed, codepoint, crc32(face id), aug]),
so the output depends neither on --workers nor on the order of the work, and
manifest.json holds no timings: two runs with the same fonts write identical bytes.

Needs Debian's python3-pil, python3-numpy, python3-fonttools and the font packages of
FACES (tools/openset/README.md). Usage:
    /usr/bin/python3 tools/openset/make_glyphs.py --out DIR [--workers N]
    /usr/bin/python3 tools/openset/make_glyphs.py --check-only
"""
import argparse
import collections
import csv
import hashlib
import io
import json
import os
import shutil
import sys
import time
import zlib
from multiprocessing import Pool

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

SPLITS = ("train-old", "train-new", "test")
INDEX_HEADER = ["path", "class", "char", "face", "aug", "scale", "angle", "dx", "dy", "blur", "noise"]

# Rendering and augmentation (the 0..255 scale for noise).
BOX = 32              # output side, px
SUPERSAMPLE = 4       # the affine transform runs at BOX * SUPERSAMPLE, then averages down
MASTER_PT = 128       # font size of the glyph bitmap that every augmentation starts from
CHECK_PT = 64         # font size of the support check
SCALE = (0.75, 0.95)  # longer side of the ink box / BOX
ROTATION_DEG = 8.0    # uniform in ±
SHIFT_PX = 2.0        # uniform in ±, per axis
BLUR_RADIUS = (0.0, 0.8)
NOISE_SIGMA_MAX = 6.0
STATS_IMAGES = 3000   # train-new images sampled for the pixel mean / std
NOTDEF_PROBE = 0x10FFFD  # a private-use code point no font maps: draws .notdef if anything

# The faces: (id, Debian package, file under /usr/share/fonts, family inside a collection).
# Chosen to look different at 32x32 (tools/openset/README.md says how); a face whose
# file is missing is skipped with a warning and left out of manifest.json.
FONTS = "/usr/share/fonts"
Face = collections.namedtuple("Face", "id package file family")
_NOTO, _NANUM = "opentype/noto", "truetype/nanum"
_UN, _UNX, _BM = "truetype/unfonts-core", "truetype/unfonts-extra", "truetype/woowa-bm"
FACES = [Face(*f) for f in [
    ("noto-sans-kr-thin", "fonts-noto-cjk-extra", f"{_NOTO}/NotoSansCJK-Thin.ttc", "Noto Sans CJK KR"),
    ("noto-sans-kr-regular", "fonts-noto-cjk", f"{_NOTO}/NotoSansCJK-Regular.ttc", "Noto Sans CJK KR"),
    ("noto-sans-kr-black", "fonts-noto-cjk-extra", f"{_NOTO}/NotoSansCJK-Black.ttc", "Noto Sans CJK KR"),
    ("noto-serif-kr-extralight", "fonts-noto-cjk-extra", f"{_NOTO}/NotoSerifCJK-ExtraLight.ttc", "Noto Serif CJK KR"),
    ("noto-serif-kr-black", "fonts-noto-cjk-extra", f"{_NOTO}/NotoSerifCJK-Black.ttc", "Noto Serif CJK KR"),
    ("nanum-gothic", "fonts-nanum", f"{_NANUM}/NanumGothic.ttf", None),
    ("nanum-gothic-extrabold", "fonts-nanum-extra", f"{_NANUM}/NanumGothicExtraBold.ttf", None),
    ("nanum-barun-gothic-ultralight", "fonts-nanum-extra", f"{_NANUM}/NanumBarunGothicUltraLight.ttf", None),
    ("nanum-myeongjo", "fonts-nanum", f"{_NANUM}/NanumMyeongjo.ttf", None),
    ("nanum-myeongjo-extrabold", "fonts-nanum-extra", f"{_NANUM}/NanumMyeongjoExtraBold.ttf", None),
    ("nanum-square-light", "fonts-nanum-extra", f"{_NANUM}/NanumSquareL.ttf", None),
    ("nanum-barunpen", "fonts-nanum-extra", f"{_NANUM}/NanumBarunpenR.ttf", None),
    ("nanum-brush", "fonts-nanum-extra", f"{_NANUM}/NanumBrush.ttf", None),
    ("nanum-pen", "fonts-nanum-extra", f"{_NANUM}/NanumPen.ttf", None),
    ("baekmuk-batang", "fonts-baekmuk", "truetype/baekmuk/batang.ttf", None),
    ("baekmuk-gulim", "fonts-baekmuk", "truetype/baekmuk/gulim.ttf", None),
    ("baekmuk-headline", "fonts-baekmuk", "truetype/baekmuk/hline.ttf", None),
    ("lexi-gulim", "fonts-lexi-gulim", "truetype/lexi/LexiGulim.ttf", None),
    ("lexi-saebom", "fonts-lexi-saebom", "truetype/lexi/LexiSaebomR.ttf", None),
    ("un-batang", "fonts-unfonts-core", f"{_UN}/UnBatang.ttf", None),
    ("un-dinaru", "fonts-unfonts-core", f"{_UN}/UnDinaru.ttf", None),
    ("un-dotum", "fonts-unfonts-core", f"{_UN}/UnDotum.ttf", None),
    ("un-graphic", "fonts-unfonts-core", f"{_UN}/UnGraphic.ttf", None),
    ("un-gungseo", "fonts-unfonts-core", f"{_UN}/UnGungseo.ttf", None),
    ("un-pilgi", "fonts-unfonts-core", f"{_UN}/UnPilgi.ttf", None),
    ("un-pilgia", "fonts-unfonts-extra", f"{_UNX}/UnPilgia.ttf", None),
    ("un-jamo-batang", "fonts-unfonts-extra", f"{_UNX}/UnJamoBatang.ttf", None),
    ("un-jamo-dotum", "fonts-unfonts-extra", f"{_UNX}/UnJamoDotum.ttf", None),
    ("un-pen", "fonts-unfonts-extra", f"{_UNX}/UnPen.ttf", None),
    ("un-penheulim", "fonts-unfonts-extra", f"{_UNX}/UnPenheulim.ttf", None),
    ("un-shinmun", "fonts-unfonts-extra", f"{_UNX}/UnShinmun.ttf", None),
    ("un-taza", "fonts-unfonts-extra", f"{_UNX}/UnTaza.ttf", None),
    ("un-vada", "fonts-unfonts-extra", f"{_UNX}/UnVada.ttf", None),
    ("un-yetgul", "fonts-unfonts-extra", f"{_UNX}/UnYetgul.ttf", None),
    ("alee-bandal", "fonts-alee", "truetype/alee/Bandal.ttf", None),
    ("alee-eunjin", "fonts-alee", "truetype/alee/Eunjin.ttf", None),
    ("alee-guseul", "fonts-alee", "truetype/alee/Guseul.ttf", None),
    ("bm-dohyeon", "fonts-woowa-bm", f"{_BM}/BMDOHYEON_ttf.ttf", None),
    ("bm-euljiro", "fonts-woowa-bm", f"{_BM}/BMEULJIROTTF.ttf", None),
    ("bm-hanna-pro", "fonts-woowa-bm", f"{_BM}/BMHANNAPro.ttf", None),
    ("bm-jua", "fonts-woowa-bm", f"{_BM}/BMJUA_ttf.ttf", None),
    ("bm-kiranghaerang", "fonts-woowa-bm", f"{_BM}/BMKIRANGHAERANG-TTF.ttf", None),
    ("bm-yeonsung", "fonts-woowa-bm", f"{_BM}/BMYEONSUNG_ttf.ttf", None),
]]
# Contact sheet rows: faces spread over the styles (those that are present).
CONTACT_FACES = ["noto-sans-kr-thin", "noto-sans-kr-black", "noto-serif-kr-extralight", "nanum-gothic",
                 "nanum-myeongjo-extrabold", "nanum-square-light", "nanum-brush", "nanum-pen",
                 "baekmuk-headline", "un-gungseo", "un-pilgi", "un-jamo-dotum", "un-taza",
                 "alee-bandal", "bm-dohyeon", "bm-yeonsung"]
CONTACT_CLASSES = 8


def ksx1001_syllables():
    """The 2350 Hangul syllables of KS X 1001 (EUC-KR rows 0xB0-0xC8), in code point order."""
    out = []
    for row in range(0xB0, 0xC9):
        for col in range(0xA1, 0xFF):
            try:
                ch = bytes((row, col)).decode("euc_kr")
            except UnicodeDecodeError:
                continue
            if "\uac00" <= ch <= "\ud7a3":
                out.append(ch)
    return out


def open_faces(wanted):
    """(faces, skipped): a dict per face present (id, package, file, index, family, style)."""
    faces, skipped = [], []
    for face in FACES:
        if wanted and face.id not in wanted:
            continue
        path = os.path.join(FONTS, face.file)
        if not os.path.exists(path):
            skipped.append(dict(id=face.id, package=face.package, reason="file missing"))
            continue
        found = None
        for index in range(64):  # a .ttc/.otc holds several families; pick the wanted one
            try:
                family, style = ImageFont.truetype(path, 16, index=index).getname()
            except OSError:
                break
            if face.family is None or family == face.family:
                found = (index, family, style)
                break
        if found is None:
            skipped.append(dict(id=face.id, package=face.package, reason=f"no family {face.family!r} in the file"))
            continue
        faces.append(dict(id=face.id, package=face.package, file=path, index=found[0], family=found[1],
                          style=found[2]))
    return faces, skipped


def ink(font, ch):
    """ch drawn white on black ('L'), cropped to its ink; None when nothing is drawn."""
    left, top, right, bottom = font.getbbox(ch)
    margin = 8
    canvas = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 0)
    ImageDraw.Draw(canvas).text((margin - left, margin - top), ch, font=font, fill=255)
    box = canvas.getbbox()
    return canvas.crop(box) if box else None


def normalised(bitmap, side=32):
    """The ink crop scaled by its longer side into a side x side array: shapes compare by it."""
    w, h = bitmap.size
    k = side / max(w, h)
    small = bitmap.resize((max(1, round(w * k)), max(1, round(h * k))), Image.BILINEAR)
    square = Image.new("L", (side, side), 0)
    square.paste(small, ((side - small.size[0]) // 2, (side - small.size[1]) // 2))
    return np.asarray(square, dtype=np.uint8)


def supported(job):
    """The syllables this face really draws. A syllable counts when the cmap maps it to a
    glyph other than .notdef, the glyph has ink (at least 16 px of box), the drawing is not
    the .notdef drawing (mean abs difference >= 2 of 255), and no 2 other syllables of the
    face share its normalised bitmap (a placeholder glyph)."""
    face, chars = job
    cmap = TTFont(face["file"], fontNumber=face["index"], lazy=True)
    notdef = cmap.getGlyphOrder()[0]
    table = cmap.getBestCmap() or {}
    font = ImageFont.truetype(face["file"], CHECK_PT, index=face["index"])
    probe = ink(font, chr(NOTDEF_PROBE))
    notdef_bitmap = None if probe is None else normalised(probe).astype(int)
    rejected = dict(no_cmap=0, empty=0, notdef_like=0, placeholder=0)
    drawn, by_bitmap = [], collections.defaultdict(list)
    for ch in chars:
        if table.get(ord(ch), notdef) == notdef:
            rejected["no_cmap"] += 1
            continue
        crop = ink(font, ch)
        if crop is None or crop.size[0] * crop.size[1] < 16:
            rejected["empty"] += 1
            continue
        bitmap = normalised(crop)
        if notdef_bitmap is not None and np.abs(bitmap.astype(int) - notdef_bitmap).mean() < 2.0:
            rejected["notdef_like"] += 1
            continue
        by_bitmap[bitmap.tobytes()].append(ch)
        drawn.append(ch)
    shared = {ch for group in by_bitmap.values() if len(group) >= 3 for ch in group}
    rejected["placeholder"] = len(shared)
    return face["id"], [ch for ch in drawn if ch not in shared], rejected


def image_rng(seed, ch, face_id, aug):
    return np.random.default_rng([seed, ord(ch), zlib.crc32(face_id.encode("utf-8")), aug])


def augmented(master, rng):
    """One 32x32 uint8 image (black on white) from the white-on-black ink crop, and its
    parameters. The draws, in this order: scale, angle, (dx, dy), blur, noise sigma, then
    the 32x32 Gaussian noise. Geometry: out = C + z R(angle) (p - g), with g the crop's
    centre, C the box centre shifted by (dx, dy) and z = scale * box / longer crop side;
    PIL's AFFINE takes the inverse map p = g + R(-angle) (out - C) / z."""
    scale = rng.uniform(*SCALE)
    angle = rng.uniform(-ROTATION_DEG, ROTATION_DEG)
    dx, dy = rng.uniform(-SHIFT_PX, SHIFT_PX, size=2)
    blur = rng.uniform(*BLUR_RADIUS)
    sigma = rng.uniform(0.0, NOISE_SIGMA_MAX)
    w, h = master.size
    side = BOX * SUPERSAMPLE
    z = scale * side / max(w, h)
    cx, cy = side / 2 + dx * SUPERSAMPLE, side / 2 + dy * SUPERSAMPLE
    cos, sin = np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))
    a, b, d, e = cos / z, sin / z, -sin / z, cos / z
    inverse = (a, b, w / 2 - a * cx - b * cy, d, e, h / 2 - d * cx - e * cy)
    big = master.transform((side, side), Image.AFFINE, inverse, resample=Image.BICUBIC)
    img = Image.eval(big.reduce(SUPERSAMPLE), lambda v: 255 - v)
    if blur > 1e-3:
        img = img.filter(ImageFilter.GaussianBlur(radius=blur))
    noisy = np.asarray(img, dtype=np.float64) + rng.normal(0.0, sigma, size=(BOX, BOX))
    pixels = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return pixels, (scale, angle, dx, dy, blur, sigma)


_open_fonts = {}


def render_class(job):
    """Writes every (face, aug) image of one syllable into each of its split folders;
    returns (class, index rows). Images are numbered 0.. in face order, then aug."""
    ch, faces, augs, dirs, seed = job
    cls = f"{ord(ch):04x}"
    for d in dirs:
        os.makedirs(os.path.join(d, cls), exist_ok=True)
    rows = []
    for face in faces:
        if face["id"] not in _open_fonts:
            _open_fonts[face["id"]] = ImageFont.truetype(face["file"], MASTER_PT, index=face["index"])
        master = ink(_open_fonts[face["id"]], ch)
        for aug in range(augs):
            pixels, params = augmented(master, image_rng(seed, ch, face["id"], aug))
            png = io.BytesIO()
            Image.fromarray(pixels, mode="L").save(png, format="PNG")
            rel = f"{cls}/{len(rows)}.png"
            for d in dirs:
                with open(os.path.join(d, rel), "wb") as fh:
                    fh.write(png.getvalue())
            rows.append([rel, cls, ch, face["id"], aug] + [f"{x:.4f}" for x in params])
    return cls, rows


def pixel_stats(split_dir, rows, seed):
    """Mean and std over all pixels (0..1) of STATS_IMAGES rows drawn by default_rng(seed)."""
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=min(STATS_IMAGES, len(rows)), replace=False))
    total = squares = 0.0
    for i in pick:
        x = np.asarray(Image.open(os.path.join(split_dir, rows[i][0])), dtype=np.float64) / 255.0
        total += x.sum()
        squares += (x * x).sum()
    n = len(pick) * BOX * BOX
    mean = total / n
    return dict(mean=round(float(mean), 4), std=round(float(np.sqrt(max(squares / n - mean * mean, 0.0))), 4),
                images=int(len(pick)), split="train-new",
                how=f"all pixels of images drawn by numpy default_rng({seed}).choice")


def contact_sheet(out, classes, face_ids, rows, path):
    """Test images of aug 0 on a grid: one row per face, one column per class."""
    where = {(r[1], r[3]): r[0] for r in rows if r[4] == 0}
    cell, label_h = 68, 22
    try:
        label_font = ImageFont.truetype(os.path.join(FONTS, "truetype/dejavu/DejaVuSans.ttf"), 12)
    except OSError:
        label_font = ImageFont.load_default()
    label_w = max([170] + [int(label_font.getlength(f)) + 12 for f in face_ids])
    sheet = Image.new("L", (label_w + cell * len(classes), label_h + cell * len(face_ids)), 255)
    draw = ImageDraw.Draw(sheet)
    for j, cls in enumerate(classes):
        draw.text((label_w + j * cell + 14, 4), cls, font=label_font, fill=0)
    for i, fid in enumerate(face_ids):
        y = label_h + i * cell
        draw.text((4, y + cell // 2 - 7), fid, font=label_font, fill=0)
        for j, cls in enumerate(classes):
            x = label_w + j * cell
            rel = where.get((cls, fid))
            if rel is None:  # the face does not draw this syllable
                draw.rectangle([x + 2, y + 2, x + cell - 3, y + cell - 3], fill=180)
                continue
            img = Image.open(os.path.join(out, "test", rel)).resize((2 * BOX, 2 * BOX), Image.NEAREST)
            sheet.paste(img, (x + 2, y + 2))
            draw.rectangle([x + 1, y + 1, x + 2 + 2 * BOX, y + 2 + 2 * BOX], outline=200)
    sheet.save(path)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="output directory (required unless --check-only)")
    ap.add_argument("--seed", type=int, default=0, help="class order and per-image seeds (default 0)")
    ap.add_argument("--n-old", type=int, default=500, help="train-old classes (default 500)")
    ap.add_argument("--n-new", type=int, default=1500, help="train-new classes, train-old's included (default 1500)")
    ap.add_argument("--n-test", type=int, default=600, help="test classes (default 600)")
    ap.add_argument("--min-faces", type=int, default=12, help="faces that must draw a syllable (default 12)")
    ap.add_argument("--aug-train", type=int, default=2, help="images per face and training class (default 2)")
    ap.add_argument("--aug-test", type=int, default=1, help="images per face and test class (default 1)")
    ap.add_argument("--faces", help="comma-separated face ids to use (default: all of FACES that are installed)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs)")
    ap.add_argument("--contact", help="contact sheet path (default DIR/contact.png; '' writes none)")
    ap.add_argument("--check-only", action="store_true", help="print the support check only; write nothing")
    args = ap.parse_args()
    if not args.out and not args.check_only:
        ap.error("--out DIR is required")
    if not 0 <= args.n_old <= args.n_new or args.n_test < 1:
        ap.error("expected 0 <= --n-old <= --n-new and --n-test >= 1")
    if args.faces:
        unknown = set(args.faces.split(",")) - {f.id for f in FACES}
        if unknown:
            ap.error(f"unknown face ids: {', '.join(sorted(unknown))}")
    return args


def main():
    args = parse_args()
    t0 = time.time()
    faces, skipped = open_faces(set(args.faces.split(",")) if args.faces else None)
    for s in skipped:
        print(f"warning: skipping face {s['id']} ({s['package']}): {s['reason']}", file=sys.stderr)
    if not faces:
        sys.exit("no font face found: install the font packages listed in tools/openset/README.md")
    chars = ksx1001_syllables()
    with Pool(args.workers) as pool:
        checks = pool.map(supported, [(f, chars) for f in faces])
    digest = hashlib.sha256()
    draws = {}
    for face, (fid, ok, rejected) in zip(faces, checks):
        digest.update(f"{fid}:{','.join(f'{ord(c):04x}' for c in ok)}\n".encode("utf-8"))
        draws[fid] = set(ok)
        face.update(n_supported=len(ok), rejected=rejected)
    faces_of = {ch: [f for f in faces if ch in draws[f["id"]]] for ch in chars}
    eligible = [ch for ch in chars if len(faces_of[ch]) >= args.min_faces]
    print(f"{len(faces)} faces; {len(eligible)} of {len(chars)} syllables drawn by >= {args.min_faces} faces "
          f"(support check {time.time() - t0:.1f}s, sha256 {digest.hexdigest()[:16]})", flush=True)
    if args.check_only:
        for f in faces:
            bad = {k: v for k, v in f["rejected"].items() if v}
            print(f"  {f['id']:30s} {f['family']} / {f['style']}  draws {f['n_supported']}" +
                  (f"  rejected {bad}" if bad else ""))
        return
    order = [eligible[i] for i in np.random.default_rng(args.seed).permutation(len(eligible))]
    if len(order) < args.n_new + args.n_test:
        sys.exit(f"not enough syllables: {len(order)} eligible, --n-new + --n-test = {args.n_new + args.n_test}")
    members = {"train-old": order[:args.n_old], "train-new": order[:args.n_new],
               "test": order[args.n_new:args.n_new + args.n_test]}

    # Start clean; manifest.json goes last, so a root without it is an unfinished run.
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if os.path.exists(os.path.join(out, "manifest.json")):
        os.remove(os.path.join(out, "manifest.json"))
    split_dir = {s: os.path.join(out, s) for s in SPLITS}
    for d in split_dir.values():
        shutil.rmtree(d, ignore_errors=True)
    old = set(members["train-old"])
    jobs = [(ch, faces_of[ch], args.aug_train, [split_dir["train-new"]] + ([split_dir["train-old"]] if ch in old else []),
             args.seed) for ch in members["train-new"]]
    jobs += [(ch, faces_of[ch], args.aug_test, [split_dir["test"]], args.seed) for ch in members["test"]]
    t1 = time.time()
    rows_of = {}
    with Pool(args.workers) as pool:
        for done, (cls, rows) in enumerate(pool.imap_unordered(render_class, jobs, chunksize=8), 1):
            rows_of[cls] = rows
            if done % 300 == 0:
                print(f"  {done}/{len(jobs)} classes rendered ({time.time() - t1:.0f}s)", flush=True)
    render_seconds = time.time() - t1

    counts, index = {}, {}
    for s in SPLITS:
        per_class = [rows_of[f"{ord(ch):04x}"] for ch in members[s]]
        index[s] = [r for rows in per_class for r in rows]
        with open(os.path.join(split_dir[s], "index.csv"), "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(INDEX_HEADER)
            writer.writerows(index[s])
        sizes = [len(rows) for rows in per_class]
        nfaces = [len(faces_of[ch]) for ch in members[s]]
        counts[s] = dict(classes=len(members[s]), images=len(index[s]),
                         images_per_class=dict(min=min(sizes, default=0), mean=round(float(np.mean(sizes or [0])), 2),
                                               max=max(sizes, default=0)),
                         faces_per_class=dict(min=min(nfaces, default=0), mean=round(float(np.mean(nfaces or [0])), 2),
                                              max=max(nfaces, default=0)),
                         augs_per_face=args.aug_test if s == "test" else args.aug_train)
    for f in faces:
        f["images"] = {s: sum(r[3] == f["id"] for r in index[s]) for s in SPLITS}
    stats = pixel_stats(split_dir["train-new"], index["train-new"], args.seed)

    sheet_faces = [x for x in CONTACT_FACES if x in draws] or [f["id"] for f in faces[:16]]
    sheet_classes = [f"{ord(ch):04x}" for ch in members["test"]
                     if all(ch in draws[x] for x in sheet_faces)][:CONTACT_CLASSES]
    contact = os.path.join(out, "contact.png") if args.contact is None else args.contact
    if contact:
        contact_sheet(out, sheet_classes, sheet_faces, index["test"], contact)

    manifest = dict(
        description="Open-set retrieval benchmark: printed Hangul syllables (KS X 1001) drawn by real font faces. "
                    "Class = code point (hex). Test classes are disjoint from the training classes; train-old's "
                    "classes are among train-new's, with identical images.",
        generator="tools/openset/make_glyphs.py",
        seed=args.seed,
        params=dict(box=BOX, supersample=SUPERSAMPLE, master_pt=MASTER_PT, check_pt=CHECK_PT, scale=list(SCALE),
                    rotation_deg=ROTATION_DEG, shift_px=SHIFT_PX, blur_radius=list(BLUR_RADIUS),
                    noise_sigma_max_255=NOISE_SIGMA_MAX, min_faces=args.min_faces, n_old=args.n_old,
                    n_new=args.n_new, n_test=args.n_test, aug_train=args.aug_train, aug_test=args.aug_test,
                    per_image_seed="numpy default_rng([seed, codepoint, crc32(face_id), aug])",
                    class_order="numpy default_rng(seed).permutation of the eligible syllables in KS X 1001 order"),
        software=dict(python=sys.version.split()[0], pillow=Image.__version__, numpy=np.__version__,
                      freetype=features.version("freetype2")),
        faces=faces,
        skipped_faces=skipped,
        support_sha256=digest.hexdigest(),
        candidates=dict(ksx1001_hangul=len(chars), eligible=len(eligible)),
        counts=counts,
        splits={s: [f"{ord(ch):04x}" for ch in members[s]] for s in SPLITS},
        pixel_stats=stats,
        contact_sheet=dict(split="test", classes=sheet_classes, faces=sheet_faces) if contact else None,
    )
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)
        fh.write("\n")

    for s in SPLITS:
        c = counts[s]
        print(f"  {s:9s} {c['classes']:5d} classes {c['images']:7d} images "
              f"({c['images_per_class']['min']}-{c['images_per_class']['max']} per class)")
    print(f"pixel mean / std (0..1, {stats['images']} train-new images): {stats['mean']} / {stats['std']}")
    print(f"done in {time.time() - t0:.1f}s (rendering {render_seconds:.1f}s): {out}")


if __name__ == "__main__":
    main()
