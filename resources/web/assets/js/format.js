// Dates, durations and sizes in the reader's own language and time zone.

const monthFormat = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
const longFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "long", timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function parseDate(text) {
  if (!text) return null;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** The date an item is filed under: when it was taken (if known) or added, matching the server's sort. */
export function itemDate(item, sort) {
  return parseDate(sort === "taken_at" ? item.taken_at || item.created_at : item.created_at);
}

const pad = (n) => String(n).padStart(2, "0");
export const monthKey = (date) => `${date.getFullYear()}-${pad(date.getMonth() + 1)}`;
export const dayKey = (date) => `${monthKey(date)}-${pad(date.getDate())}`;
export const monthLabel = (date) => monthFormat.format(date);

export function dayLabel(date, now = new Date()) {
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (dayKey(date) === dayKey(now)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  return dayFormat.format(date);
}

export const longDate = (date) => (date ? longFormat.format(date) : "");

/** 75 → "1:15", 3725 → "1:02:05". */
export function duration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** "5 minutes ago", "yesterday", "now". */
export function ago(date, now = Date.now()) {
  if (!date) return "";
  const seconds = Math.round((date.getTime() - now) / 1000);
  const steps = [[60, "second"], [3600, "minute"], [86400, "hour"], [604800, "day"], [2629800, "week"],
    [31557600, "month"], [Infinity, "year"]];
  let unit = 1;
  for (const [limit, name] of steps) {
    if (Math.abs(seconds) < limit) {
      const value = Math.round(seconds / unit);
      return name === "second" && Math.abs(value) < 45 ? relative.format(0, "second") : relative.format(value, name);
    }
    unit = limit;
  }
  return "";
}

/** "14:59" for a countdown. */
export function countdown(seconds) {
  const total = Math.max(0, Math.ceil(seconds));
  return total >= 3600 ? duration(total) : `${Math.floor(total / 60)}:${pad(total % 60)}`;
}
