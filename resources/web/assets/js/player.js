// The video player: a <video> fed by hls.js (wherever Media Source Extensions exist, even if the browser
// also plays HLS itself) or by the browser's own HLS (Safari/iOS without MSE). Quality menu, keyboard
// shortcuts, and resume: the position is saved every few seconds while playing, on pause and on close.
//
// A video still converting plays from the beginning while its playlists grow (EVENT playlists, reloaded by
// the player until they end, when it is an ordinary video again). Until its first segments exist the page
// says "Starting soon…" and asks again every few seconds.
//
// hls.js fetches playlists, keys and segments with XHR on this origin, so the HttpOnly cookies authorise
// them; before each request it waits for a due token refresh, and a 401 gets one refresh and one retry.

import { api, ensureFresh, markActivity, refresh, SignedOut } from "./api.js";
import { $, el } from "./dom.js";
import { duration } from "./format.js";

const HLS_SCRIPT = "/assets/vendor/hls.min.js";
const SAVE_EVERY_MS = 5000;
const SEEK_SECONDS = 5;
const STARTING_RETRY_MS = 2000;
let hlsLoading = null;

/** Load the vendored hls.js once, on first use (it is large and photo-only visits never need it). */
export function loadHls() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsLoading) {
    hlsLoading = new Promise((resolve, reject) => {
      const script = el("script", { src: HLS_SCRIPT, async: true });
      script.addEventListener("load", () => resolve(window.Hls));
      script.addEventListener("error", () => {
        hlsLoading = null;
        script.remove();
        reject(new Error("The video player failed to load"));
      });
      document.head.append(script);
    });
  }
  return hlsLoading;
}

/** hls.js load policies that answer a 401 with one cookie refresh and one retry (instead of giving up). */
function refreshingPolicy(policy) {
  const base = policy.default;
  const errorRetry = { ...(base.errorRetry || { maxNumRetry: 0, retryDelayMs: 1000, maxRetryDelayMs: 8000 }) };
  errorRetry.shouldRetry = (_config, retryCount, _timeout, response, retry) => {
    if (response && response.code === 401 && retryCount === 0) {
      refresh().catch(() => {}); // a session that is over signs the page out from there
      return true;
    }
    return retry;
  };
  return { default: { ...base, errorRetry } };
}

export class Player {
  /**
   * @param {HTMLElement} stage where the <video> goes
   * @param {object} item the library item (a video)
   */
  constructor(stage, item) {
    this.item = item;
    this.stage = stage;
    this.hls = null;
    this.started = false; // nothing is saved until playback really began (a resume must not become 0)
    this.lastSaved = null;
    this.destroyed = false;
    // A converting video has no poster yet (it comes with the finished item).
    this.video = el("video", { class: "video", controls: true, playsinline: true, preload: "metadata",
      poster: item.status === "converting" ? null : `/api/media/poster/${item.id}`,
      "aria-label": item.original_name });
    this.onPageHide = () => this.save({ keepalive: true, force: true });
    this.onHidden = () => {
      if (document.visibilityState === "hidden") this.save({ keepalive: true, force: true });
    };
    window.addEventListener("pagehide", this.onPageHide);
    document.addEventListener("visibilitychange", this.onHidden);
    const video = this.video;
    video.addEventListener("playing", () => { this.started = true; });
    video.addEventListener("seeked", () => { if (video.currentTime > 0) this.started = true; });
    video.addEventListener("pause", () => this.save({ force: true }));
    video.addEventListener("ended", () => this.save({ force: true }));
    video.addEventListener("timeupdate", () => { if (!video.paused) markActivity(); });
    this.saveTimer = setInterval(() => { if (!video.paused) this.save(); }, SAVE_EVERY_MS);
    stage.replaceChildren(video);
  }

  async start() {
    const item = this.item;
    const [details, Hls] = await Promise.all([
      api(`/api/media/${item.id}`),
      loadHls().catch(() => null),
    ]);
    if (this.destroyed) return;
    const converting = details.status === "converting";
    if (!converting && !this.video.hasAttribute("poster")) this.video.poster = `/api/media/poster/${item.id}`;
    const total = details.duration || item.duration || 0;
    // Still converting: from the beginning (a saved position may not have been converted yet).
    const resumeAt = !converting && details.position > 2 && details.position < total - 3 ? details.position : 0;
    const source = `/api/media/stream/${item.id}`;
    if (converting && !(await this.firstSegments(source))) return;
    if (Hls && Hls.isSupported()) {
      this.startHls(Hls, source, resumeAt, converting);
    } else if (this.video.canPlayType("application/vnd.apple.mpegurl")) {
      this.startNative(source, resumeAt);
    } else {
      this.fail("This browser can't play these videos. Try an up-to-date Safari, Chrome, Edge or Firefox.");
      return;
    }
    if (resumeAt) this.offerStartOver(resumeAt);
    this.play();
  }

  startHls(Hls, source, resumeAt, growing) {
    const defaults = Hls.DefaultConfig;
    const hls = new Hls({
      enableWorker: true, // a blob: worker, which the CSP allows (worker-src 'self' blob:)
      startPosition: resumeAt || (growing ? 0 : -1), // a growing (EVENT) playlist: from the start, not its end
      capLevelToPlayerSize: true,
      xhrSetup: () => ensureFresh(),
      manifestLoadPolicy: refreshingPolicy(defaults.manifestLoadPolicy),
      playlistLoadPolicy: refreshingPolicy(defaults.playlistLoadPolicy),
      keyLoadPolicy: refreshingPolicy(defaults.keyLoadPolicy),
      fragLoadPolicy: refreshingPolicy(defaults.fragLoadPolicy),
    });
    this.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, (_event, data) => this.qualityMenu(data.levels));
    hls.on(Hls.Events.LEVEL_SWITCHED, (_event, data) => this.showLevel(data.level));
    let recovered = false;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || this.destroyed) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
        recovered = true;
        hls.recoverMediaError();
        return;
      }
      // Perhaps the session ended: asking who we are signs the page out if so.
      const retry = () => {
        hls.startLoad(this.video.currentTime || resumeAt || -1);
        this.play();
      };
      api("/api/auth/me").then(() => this.fail("This video couldn't be loaded.", retry), (error) => {
        if (!(error instanceof SignedOut)) this.fail(`This video couldn't be loaded. ${error.message}`, retry);
      });
    });
    hls.loadSource(source);
    hls.attachMedia(this.video);
  }

  /**
   * Wait until a converting video's master playlist is there (every rung has its first segment), saying
   * "Starting soon…" meanwhile. Resolves to false if the player was closed first; other errors throw.
   */
  async firstSegments(source) {
    let note = null;
    try {
      for (;;) {
        try {
          await api(source); // a playlist, not JSON: any 2xx resolves
          return !this.destroyed;
        } catch (error) {
          if (error.code !== "MEDIA_001" || !error.details.converting) throw error;
        }
        if (this.destroyed) return false;
        note ||= this.stage.appendChild(el("p", { class: "player-status", role: "status" },
          el("span", { class: "spinner", "aria-hidden": "true" }), "Starting soon…"));
        await new Promise((resolve) => { setTimeout(resolve, STARTING_RETRY_MS); });
        if (this.destroyed) return false;
      }
    } finally {
      note?.remove();
    }
  }

  startNative(source, resumeAt) {
    const video = this.video;
    this.qualityMenu([]);
    if (resumeAt) {
      video.addEventListener("loadedmetadata", () => { video.currentTime = resumeAt; }, { once: true });
    }
    let retried = false;
    video.addEventListener("error", () => {
      if (this.destroyed || retried) return;
      retried = true;
      const at = video.currentTime;
      api("/api/auth/me").then(() => { // refreshes the cookies, or signs the page out
        video.src = source;
        video.addEventListener("loadedmetadata", () => { video.currentTime = at; }, { once: true });
        this.play();
      }).catch(() => {});
    });
    video.src = source;
  }

  play() {
    this.video.play().catch(() => { /* autoplay refused: the controls' play button is there */ });
  }

  offerStartOver(at) {
    const chip = el("button", { type: "button", class: "chip resume" }, `Resumed at ${duration(at)} · Start over`);
    chip.addEventListener("click", () => {
      this.video.currentTime = 0;
      this.play();
      chip.remove();
    });
    this.stage.append(chip);
    setTimeout(() => chip.remove(), 8000);
  }

  fail(message, retry) {
    this.stage.querySelector(".player-error")?.remove();
    const box = el("div", { class: "player-error", role: "alert" }, el("p", {}, message));
    if (retry) {
      const again = el("button", { type: "button", class: "button primary" }, "Try again");
      again.addEventListener("click", () => { box.remove(); retry(); });
      box.append(again);
    }
    this.stage.append(box);
  }

  // --- quality ------------------------------------------------------------------------------------------

  qualityMenu(levels) {
    const select = $("quality");
    const options = [el("option", { value: "-1" }, "Auto")];
    levels.map((level, index) => ({ level, index }))
      .sort((a, b) => (b.level.height || 0) - (a.level.height || 0) || b.level.bitrate - a.level.bitrate)
      .forEach(({ level, index }) => options.push(el("option", { value: String(index) }, label(level))));
    select.replaceChildren(...options);
    select.value = "-1";
    select.disabled = levels.length < 2; // native HLS: the browser chooses (Auto only)
    select.onchange = () => {
      if (!this.hls) return;
      this.hls.currentLevel = Number(select.value); // -1 = automatic; a rung switches right away
    };
    $("quality-tools").hidden = false;
  }

  showLevel(index) {
    const level = this.hls && this.hls.levels[index];
    if (!level) return;
    const select = $("quality");
    select.dataset.playing = label(level);
    const auto = select.querySelector("option[value='-1']");
    if (auto) auto.textContent = this.hls.autoLevelEnabled ? `Auto (${label(level)})` : "Auto";
  }

  // --- keys -------------------------------------------------------------------------------------------

  /** Handle a player shortcut; returns true if the key was one. */
  key(event) {
    const video = this.video;
    const seek = (delta) => {
      const end = Number.isFinite(video.duration) ? video.duration : Infinity;
      video.currentTime = Math.min(end, Math.max(0, video.currentTime + delta));
    };
    const actions = {
      " ": () => (video.paused ? this.play() : video.pause()),
      k: () => (video.paused ? this.play() : video.pause()),
      m: () => { video.muted = !video.muted; },
      f: () => this.toggleFullscreen(),
      ArrowLeft: () => seek(-SEEK_SECONDS),
      ArrowRight: () => seek(SEEK_SECONDS),
      j: () => seek(-10),
      l: () => seek(10),
    };
    const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!action) return false;
    action();
    return true;
  }

  toggleFullscreen() {
    const video = this.video;
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (video.requestFullscreen) video.requestFullscreen().catch(() => {});
    else if (video.webkitEnterFullscreen) video.webkitEnterFullscreen(); // iPhone
  }

  // --- position -------------------------------------------------------------------------------------------

  /** Save where playback is (periodic saves skip small moves; pause, close and leaving always save). */
  save({ keepalive = false, force = false } = {}) {
    const video = this.video;
    if (!this.started || this.destroyed || !Number.isFinite(video.currentTime)) return;
    const position = video.ended ? 0 : Math.round(video.currentTime * 10) / 10; // finished: next time from 0
    if (this.lastSaved !== null && Math.abs(position - this.lastSaved) < (force ? 0.05 : 0.5)) return;
    this.lastSaved = position;
    api(`/api/media/${this.item.id}/position`, { method: "PUT", body: { position }, keepalive }).catch(() => {});
  }

  /** Stop and let go of everything: position saved (unless signed out), hls.js destroyed, no source left. */
  destroy({ save = true } = {}) {
    if (this.destroyed) return;
    if (save) this.save({ keepalive: true, force: true });
    this.destroyed = true;
    clearInterval(this.saveTimer);
    window.removeEventListener("pagehide", this.onPageHide);
    document.removeEventListener("visibilitychange", this.onHidden);
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    const video = this.video;
    video.pause();
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    video.removeAttribute("src");
    video.removeAttribute("poster");
    video.load();
    video.remove();
    const select = $("quality");
    select.onchange = null;
    select.replaceChildren();
    delete select.dataset.playing;
    $("quality-tools").hidden = true;
  }
}

function label(level) {
  return level.height ? `${level.height}p` : `${Math.round((level.bitrate || 0) / 1000)} kb/s`;
}
