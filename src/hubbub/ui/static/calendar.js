// The calendar page: move a scheduled post to another time, by dragging it to another
// cell, or from the keyboard (focus it; the arrow keys move it by 30 minutes up and down
// and a day left and right in the week view, a day and a week in the month view; Enter
// moves it there, Escape puts it back). What happens is said in the live region. The
// move is asked of the web app (/calendar/reschedule, with the page's CSRF token), which
// asks the API; a refusal is shown as the API said it, and the post goes back.
//
// Times are the wall-clock times the page shows, in the person's zone ("2027-03-26T09:00"):
// moving by 30 minutes is moving the clock's hands, computed on those times as if in UTC,
// so a DST change between never shifts a post by an hour.
"use strict";

(function () {
  const grid = document.querySelector("[data-calendar]");
  if (!grid) return;
  const view = grid.dataset.calendar;
  const csrf = grid.dataset.csrf;
  const status = document.getElementById("calendar-status");
  const problem = document.getElementById("calendar-error");
  const MINUTE = 60 * 1000;
  const DAY = 24 * 60 * MINUTE;
  // In the page's language; the time is the wall-clock time shown, so read "in UTC".
  const spoken = new Intl.DateTimeFormat(document.documentElement.lang || undefined, {
    timeZone: "UTC", weekday: "long", day: "numeric", month: "long", hour: "2-digit",
    minute: "2-digit", hourCycle: "h23",
  });
  let dragged = null;
  let moving = null; // {entry, home, from, to}

  function asUtc(at) {
    return Date.parse(at + ":00Z");
  }

  function wallTime(ms) {
    return new Date(ms).toISOString().slice(0, 16);
  }

  function said(at) {
    return spoken.format(new Date(asUtc(at)));
  }

  function tell(text) {
    problem.textContent = "";
    status.textContent = text;
  }

  function refuse(text) {
    status.textContent = "";
    problem.textContent = text;
  }

  function name(entry) {
    const text = entry.querySelector(".text");
    return text ? "“" + text.textContent.trim() + "”" : "the post";
  }

  // The cell that shows `at`: the half-hour's in the week, the day's in the month.
  function cellAt(at) {
    if (view === "week") {
      const [day, time] = at.split("T");
      const half = time.slice(0, 3) + (Number(time.slice(3)) < 30 ? "00" : "30");
      return grid.querySelector(`td[data-at="${day}T${half}"]`);
    }
    return grid.querySelector(`td[data-date="${at.slice(0, 10)}"]`);
  }

  // Where an entry dropped on `cell` goes: the cell's half-hour, or its day at the same time.
  function timeOf(cell, entry) {
    if (cell.dataset.at) return cell.dataset.at;
    return cell.dataset.date + "T" + entry.dataset.at.slice(11);
  }

  function place(entry, at) {
    const cell = cellAt(at);
    if (cell) cell.append(entry);
    return Boolean(cell);
  }

  async function move(entry, home, to) {
    const from = entry.dataset.at;
    if (to === from) {
      tell(`${name(entry)} stays at ${said(from)}.`);
      return;
    }
    tell(`Moving ${name(entry)} to ${said(to)}…`);
    entry.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await fetch("/calendar/reschedule", {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": csrf },
        body: JSON.stringify({ post: entry.dataset.post, channel: entry.dataset.channel, at: to }),
      });
    } catch (error) {
      answer = null;
    }
    entry.removeAttribute("aria-busy");
    const body = answer ? await answer.json().catch(() => ({})) : {};
    if (!answer || !answer.ok) {
      home.append(entry);
      refuse(`${name(entry)} was not moved: ${body.detail || "the platform did not answer"}`);
      entry.focus();
      return;
    }
    entry.dataset.at = to;
    entry.querySelector(".time").textContent = to.slice(11);
    place(entry, to);
    const review = body.post && body.post.review;
    if (review && review.state) {
      entry.className = entry.className.replace(/state-\S+/, "state-" + review.state);
      entry.dataset.state = review.state;
      if (body.label) entry.querySelector(".label").textContent = body.label;
    }
    tell(body.message || `Rescheduled to ${said(to)}.`);
    entry.focus();
  }

  grid.addEventListener("dragstart", (event) => {
    const entry = event.target.closest(".entry[draggable=true]");
    if (!entry) return;
    dragged = { entry, home: entry.parentElement };
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", entry.dataset.post);
    entry.classList.add("dragging");
  });

  grid.addEventListener("dragend", () => {
    if (dragged) dragged.entry.classList.remove("dragging");
    grid.querySelectorAll(".drop-target").forEach((cell) => cell.classList.remove("drop-target"));
  });

  grid.addEventListener("dragover", (event) => {
    const cell = event.target.closest("td[data-at], td[data-date]");
    if (!dragged || !cell) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    grid.querySelectorAll(".drop-target").forEach((c) => c !== cell && c.classList.remove("drop-target"));
    cell.classList.add("drop-target");
  });

  grid.addEventListener("drop", (event) => {
    const cell = event.target.closest("td[data-at], td[data-date]");
    if (!dragged || !cell) return;
    event.preventDefault();
    cell.classList.remove("drop-target");
    const { entry, home } = dragged;
    dragged = null;
    move(entry, home, timeOf(cell, entry));
  });

  const STEPS = view === "week"
    ? { ArrowUp: -30 * MINUTE, ArrowDown: 30 * MINUTE, ArrowLeft: -DAY, ArrowRight: DAY }
    : { ArrowUp: -7 * DAY, ArrowDown: 7 * DAY, ArrowLeft: -DAY, ArrowRight: DAY };

  function cancel() {
    const { entry, home, from } = moving;
    moving = null;
    home.append(entry);
    entry.classList.remove("moving");
    entry.focus();
    tell(`${name(entry)} stays at ${said(from)}.`);
  }

  grid.addEventListener("keydown", (event) => {
    const entry = event.target.closest(".entry[draggable=true]");
    if (!entry || event.target !== entry) return;
    if (event.key in STEPS) {
      event.preventDefault();
      if (!moving || moving.entry !== entry) {
        moving = { entry, home: entry.parentElement, from: entry.dataset.at, to: entry.dataset.at };
        entry.classList.add("moving");
      }
      const to = wallTime(asUtc(moving.to) + STEPS[event.key]);
      if (!cellAt(to)) {
        tell(`${said(to)} is not on this page: Enter moves ${name(entry)} to ${said(moving.to)}.`);
        return;
      }
      moving.to = to;
      place(entry, to);
      entry.focus();
      tell(`${name(entry)} to ${said(to)}: Enter to move it there, Escape to leave it.`);
    } else if (event.key === "Enter" && moving && moving.entry === entry) {
      event.preventDefault();
      const { home, to } = moving;
      moving = null;
      entry.classList.remove("moving");
      move(entry, home, to);
    } else if (event.key === "Escape" && moving && moving.entry === entry) {
      event.preventDefault();
      cancel();
    }
  });

  grid.addEventListener("focusout", (event) => {
    if (!moving || event.target !== moving.entry) return;
    // Focus that leaves the entry for good (not its own move in the page) puts it back.
    setTimeout(() => {
      if (moving && document.activeElement !== moving.entry) cancel();
    }, 0);
  });
})();
