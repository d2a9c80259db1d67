// Geometry of the virtualised job list: fixed-height rows, some followed by a detail panel whose
// height is its content's (measured by the view once drawn). Only the rows inside the viewport
// (plus a margin) are in the DOM, so 10,000 jobs cost the same to draw as 30.

/**
 * First index in sorted `arr` whose value is >= x.
 * @param {number[]} arr
 * @param {number} x
 */
export function lowerBound(arr, x) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (arr[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * @param {number} count  number of rows
 * @param {number[]} expanded  sorted indices of rows that show a detail panel
 * @param {number} rowH  row height in px
 * @param {number | ((i: number) => number)} detailH  the height in px of the detail panel of
 *   row i (one number: every panel's)
 */
export function makeLayout(count, expanded, rowH, detailH) {
  const heightOf = typeof detailH === "function" ? detailH : () => detailH;
  // below[k]: the height of the detail panels of expanded[0..k-1], so a row's top stays a
  // binary search away however many rows are open.
  const below = new Array(expanded.length + 1);
  below[0] = 0;
  for (let k = 0; k < expanded.length; k++) below[k + 1] = below[k] + heightOf(expanded[k]);
  /** Top of row i. */
  const top = (/** @type {number} */ i) => i * rowH + below[lowerBound(expanded, i)];
  const total = count * rowH + below[expanded.length];
  /** Index of the row whose box (row + detail) contains y. */
  const indexAt = (/** @type {number} */ y) => {
    if (count === 0) return 0;
    let lo = 0;
    let hi = count - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (top(mid) <= y) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  /**
   * Rows to draw for a viewport.
   * @param {number} scrollTop
   * @param {number} height
   * @param {number} [overscan]  extra rows above and below
   * @returns {[number, number]}  [start, end) indices
   */
  const range = (scrollTop, height, overscan = 8) => {
    if (count === 0) return [0, 0];
    const start = Math.max(0, indexAt(Math.max(0, scrollTop)) - overscan);
    const end = Math.min(count, indexAt(scrollTop + height) + 1 + overscan);
    return [start, end];
  };
  return { top, total, indexAt, range };
}
