// The compose box: `@` and a few letters ask the mentions service for pages, as one types.
// Suggestions are built with textContent (never HTML), chosen with the arrows and Enter
// (or a click), and put in the text as @handle. Each keystroke's time to suggestions
// drawn is kept in window.hubbubTimings (milliseconds), for `hubbub bench web`.
"use strict";

(function () {
  const box = document.querySelector("textarea[data-mentions]");
  if (!box) return;
  const list = document.getElementById(box.getAttribute("aria-controls"));
  const status = document.getElementById("compose-status");
  const source = box.dataset.mentions;
  const timings = (window.hubbubTimings = []);
  let found = [];
  let active = -1;
  let asked = 0;

  function typedMention() {
    const before = box.value.slice(0, box.selectionStart);
    const match = /(^|\s)@([\p{L}\p{N}._-]{1,64})$/u.exec(before);
    return match ? { text: match[2], start: before.length - match[2].length - 1 } : null;
  }

  function close() {
    found = [];
    active = -1;
    list.hidden = true;
    list.replaceChildren();
    box.setAttribute("aria-expanded", "false");
    box.removeAttribute("aria-activedescendant");
  }

  function draw() {
    list.replaceChildren(
      ...found.map((page, i) => {
        const item = document.createElement("li");
        item.id = "suggestion-" + i;
        item.setAttribute("role", "option");
        item.setAttribute("aria-selected", String(i === active));
        const handle = document.createElement("span");
        handle.className = "handle";
        handle.textContent = "@" + (page.handle || page.id);
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = page.display_name || "";
        const followers = document.createElement("span");
        followers.className = "followers";
        followers.textContent = page.followers.toLocaleString() + " followers";
        item.append(handle, name, followers);
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          choose(i);
        });
        return item;
      })
    );
    list.hidden = found.length === 0;
    box.setAttribute("aria-expanded", String(found.length > 0));
    if (active >= 0) box.setAttribute("aria-activedescendant", "suggestion-" + active);
    status.textContent = found.length ? found.length + " pages suggested" : "";
  }

  function choose(i) {
    const typed = typedMention();
    const page = found[i];
    if (!typed || !page) return;
    const handle = "@" + (page.handle || page.id) + " ";
    const after = box.value.slice(box.selectionStart);
    box.value = box.value.slice(0, typed.start) + handle + after;
    const caret = typed.start + handle.length;
    box.setSelectionRange(caret, caret);
    close();
    box.dispatchEvent(new Event("input", { bubbles: true })); // the text changed: as if typed
  }

  async function suggest() {
    const typed = typedMention();
    if (!typed) {
      close();
      return;
    }
    const started = performance.now();
    const mine = ++asked;
    const answer = await fetch(source + "?q=" + encodeURIComponent(typed.text), {
      credentials: "same-origin",
      headers: { accept: "application/json" },
    });
    if (mine !== asked) return; // a later keystroke asked again: its answer wins
    if (!answer.ok) {
      close();
      status.textContent = answer.status === 401 ? "Your session ended: sign in again." : "";
      return;
    }
    found = await answer.json();
    active = found.length ? 0 : -1;
    draw();
    timings.push(performance.now() - started);
  }

  box.addEventListener("input", suggest);
  box.addEventListener("keydown", (event) => {
    if (list.hidden || !found.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      active = (active + step + found.length) % found.length;
      draw();
    } else if (event.key === "Enter" || event.key === "Tab") {
      event.preventDefault();
      choose(active);
    } else if (event.key === "Escape") {
      close();
    }
  });
  box.addEventListener("blur", () => setTimeout(close, 100));
})();

// A series chart (uPlot), drawn from the page's JSON data in the person's time zone; the
// table beside it holds the same numbers for screen readers and for no JavaScript.
(function () {
  const data = document.getElementById("series-data");
  const where = document.getElementById("series-chart");
  if (!data || !where || typeof uPlot === "undefined") return;
  const chart = JSON.parse(data.textContent);
  const width = Math.min(where.clientWidth || 800, 960);
  new uPlot(
    {
      width: width,
      height: 280,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), chart.zone),
      series: [{}, { label: chart.label, stroke: "#1f5fbf", width: 2, fill: "rgba(31,95,191,.08)" }],
      axes: [{}, { size: 60 }],
    },
    [chart.x, chart.y],
    where
  );
})();
