// Zoom and pan for one photo: pinch, double-click/double-tap, Ctrl+wheel (trackpad pinch), +/- keys and
// buttons; at normal size a horizontal swipe goes to the next/previous photo and a swipe down closes.

const MAX_ZOOM = 8;
const STEP = 1.6;
const DOUBLE_TAP_MS = 300;
const SWIPE_PX = 60;

export class Zoom {
  /**
   * @param {HTMLElement} stage  the area that receives gestures
   * @param {HTMLElement} frame  the element scaled and moved (holds the picture)
   * @param {{onSwipe?: (direction: number) => void, onDismiss?: () => void, onTap?: () => void,
   *          onChange?: (scale: number) => void}} hooks
   */
  constructor(stage, frame, hooks = {}) {
    Object.assign(this, { stage, frame, hooks, scale: 1, x: 0, y: 0 });
    this.pointers = new Map();
    this.gesture = null;
    this.lastTap = 0;
    this.tapTimer = null;
    this.handlers = {
      pointerdown: (e) => this.down(e), pointermove: (e) => this.move(e), pointerup: (e) => this.up(e),
      pointercancel: (e) => this.up(e, true), wheel: (e) => this.wheel(e), dblclick: (e) => this.dblclick(e),
    };
    for (const [type, handler] of Object.entries(this.handlers)) {
      stage.addEventListener(type, handler, { passive: type !== "wheel" });
    }
  }

  destroy() {
    clearTimeout(this.tapTimer);
    for (const [type, handler] of Object.entries(this.handlers)) this.stage.removeEventListener(type, handler);
  }

  get zoomed() {
    return this.scale > 1.01;
  }

  maxScale() {
    const img = this.frame.querySelector("img.photo");
    const shown = this.frame.getBoundingClientRect().width / this.scale;
    const natural = img && img.naturalWidth ? img.naturalWidth / window.devicePixelRatio : 0;
    return Math.max(4, Math.min(MAX_ZOOM, shown ? (natural / shown) * 2 : MAX_ZOOM));
  }

  /** Scale by `factor` keeping the stage point (cx, cy) (default: the centre) where it is. */
  zoomBy(factor, cx, cy) {
    const box = this.stage.getBoundingClientRect();
    const px = (cx ?? box.left + box.width / 2) - (box.left + box.width / 2);
    const py = (cy ?? box.top + box.height / 2) - (box.top + box.height / 2);
    const next = Math.min(this.maxScale(), Math.max(1, this.scale * factor));
    const ratio = next / this.scale;
    this.x = px - (px - this.x) * ratio;
    this.y = py - (py - this.y) * ratio;
    this.scale = next;
    this.apply();
  }

  zoomIn() { this.zoomBy(STEP); }
  zoomOut() { this.zoomBy(1 / STEP); }

  reset() {
    Object.assign(this, { scale: 1, x: 0, y: 0 });
    this.apply();
  }

  /** Keep the picture covering the stage when zoomed (no panning it out of sight). */
  clamp() {
    const box = this.stage.getBoundingClientRect();
    const width = this.frame.offsetWidth * this.scale;
    const height = this.frame.offsetHeight * this.scale;
    const limitX = Math.max(0, (width - box.width) / 2);
    const limitY = Math.max(0, (height - box.height) / 2);
    this.x = Math.min(limitX, Math.max(-limitX, this.x));
    this.y = Math.min(limitY, Math.max(-limitY, this.y));
  }

  apply(animate = true) {
    if (this.scale <= 1.01) Object.assign(this, { scale: 1, x: 0, y: 0 });
    this.clamp();
    this.frame.classList.toggle("animating", animate);
    this.frame.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.stage.classList.toggle("zoomed", this.zoomed);
    if (this.hooks.onChange) this.hooks.onChange(this.scale);
  }

  // --- gestures ---------------------------------------------------------------------------------------

  down(event) {
    if (event.target.closest("button, a, select")) return;
    if (event.pointerType === "mouse" && event.button !== 0) return;
    this.lastPointerType = event.pointerType;
    this.stage.setPointerCapture?.(event.pointerId);
    this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      this.gesture = { kind: "pinch", distance: Math.hypot(a.x - b.x, a.y - b.y) || 1, scale: this.scale,
        mid: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }, x: this.x, y: this.y };
    } else if (this.pointers.size === 1) {
      this.gesture = { kind: this.zoomed ? "pan" : "swipe", start: { x: event.clientX, y: event.clientY },
        x: this.x, y: this.y, time: performance.now(), moved: false, touch: event.pointerType !== "mouse" };
    }
  }

  move(event) {
    if (!this.pointers.has(event.pointerId) || !this.gesture) return;
    this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    const g = this.gesture;
    if (g.kind === "pinch" && this.pointers.size >= 2) {
      const [a, b] = [...this.pointers.values()];
      const distance = Math.hypot(a.x - b.x, a.y - b.y);
      const target = Math.min(this.maxScale(), Math.max(1, g.scale * (distance / g.distance)));
      const box = this.stage.getBoundingClientRect();
      const px = g.mid.x - (box.left + box.width / 2);
      const py = g.mid.y - (box.top + box.height / 2);
      const ratio = target / g.scale;
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      this.scale = target;
      this.x = px - (px - g.x) * ratio + (mid.x - g.mid.x);
      this.y = py - (py - g.y) * ratio + (mid.y - g.mid.y);
      this.apply(false);
      return;
    }
    const dx = event.clientX - g.start.x;
    const dy = event.clientY - g.start.y;
    if (Math.hypot(dx, dy) > 6) g.moved = true;
    if (g.kind === "pan") {
      this.x = g.x + dx;
      this.y = g.y + dy;
      this.apply(false);
    } else if (g.kind === "swipe" && g.touch && g.moved) {
      // follow the finger a little, so the swipe feels attached
      const vertical = Math.abs(dy) > Math.abs(dx) && dy > 0;
      this.frame.classList.remove("animating");
      this.frame.style.transform = vertical ? `translateY(${dy * 0.6}px)` : `translateX(${dx * 0.6}px)`;
      this.frame.style.opacity = vertical ? String(Math.max(0.3, 1 - dy / 400)) : "";
    }
  }

  up(event, cancelled = false) {
    if (!this.pointers.has(event.pointerId)) return;
    this.pointers.delete(event.pointerId);
    const g = this.gesture;
    if (this.pointers.size > 0) {
      // a finger left a pinch: continue as a pan with the remaining one
      const [rest] = [...this.pointers.values()];
      this.gesture = { kind: "pan", start: rest, x: this.x, y: this.y, moved: true };
      return;
    }
    this.gesture = null;
    if (!g) return;
    this.frame.style.opacity = "";
    if (g.kind === "swipe" && !cancelled) {
      const dx = event.clientX - g.start.x;
      const dy = event.clientY - g.start.y;
      const fast = performance.now() - g.time < 250;
      if (g.touch && Math.abs(dx) > Math.abs(dy) && (Math.abs(dx) > SWIPE_PX || (fast && Math.abs(dx) > 25))) {
        this.apply();
        this.hooks.onSwipe?.(dx < 0 ? 1 : -1);
        return;
      }
      if (g.touch && dy > 120 && dy > Math.abs(dx) * 1.5) {
        this.hooks.onDismiss?.();
        return;
      }
      if (!g.moved && event.pointerType !== "mouse") this.tap(event);
      else if (!g.moved) this.click();
    }
    this.apply();
  }

  tap(event) {
    const now = performance.now();
    clearTimeout(this.tapTimer);
    if (now - this.lastTap < DOUBLE_TAP_MS) {
      this.lastTap = 0;
      this.toggleAt(event.clientX, event.clientY);
      return;
    }
    this.lastTap = now;
    this.tapTimer = setTimeout(() => this.hooks.onTap?.(), DOUBLE_TAP_MS);
  }

  click() {
    clearTimeout(this.tapTimer);
    this.tapTimer = setTimeout(() => this.hooks.onTap?.(), DOUBLE_TAP_MS);
  }

  dblclick(event) {
    if (event.target.closest("button, a, select")) return;
    clearTimeout(this.tapTimer);
    if (this.lastPointerType && this.lastPointerType !== "mouse") return; // double-tap: handled in tap()
    this.toggleAt(event.clientX, event.clientY);
  }

  toggleAt(x, y) {
    if (this.zoomed) this.reset();
    else this.zoomBy(2.5, x, y);
  }

  wheel(event) {
    if (event.ctrlKey || event.metaKey) {
      event.preventDefault();
      this.zoomBy(Math.exp(-event.deltaY / 200), event.clientX, event.clientY);
    } else if (this.zoomed) {
      event.preventDefault();
      this.x -= event.deltaX;
      this.y -= event.deltaY;
      this.apply(false);
    }
  }
}
