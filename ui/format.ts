/** "45 s", "3 min", "2 h 5 min", "3 d 4 h": a duration as people read it at a glance. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 24) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** How long ago a timestamp was, or '–'. */
export function age(iso: string | null | undefined): string {
  return iso ? duration(Date.now() - Date.parse(iso)) : '–';
}

/** How far ahead a timestamp is ("now" once it has passed), or '–'. */
export function until(iso: string | null | undefined): string {
  if (!iso) return '–';
  const ms = Date.parse(iso) - Date.now();
  return ms <= 0 ? 'now' : `in ${duration(ms)}`;
}

/** A timestamp in the reader's local time, for tooltips and tables. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}
