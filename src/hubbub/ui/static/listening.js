// The listening pages. The board (/listening): each column's stream, live, through one
// Server-Sent Events stream for the page (/listening/live), which resumes where it was
// when the browser reconnects (its Last-Event-ID); a match is put on top of its column, a
// withdrawn post leaves it. Everything a post says is set with textContent (never HTML),
// and its link only when it is an http(s) address. A query's error puts the caret where
// the query went wrong. The inbox (/inbox): its unread count kept live, new items put on
// top as the server renders them, and an item whose post was deleted taken away.
"use strict";

(function () {
  const MOST_SHOWN = 200;
  const RETRY_MS = 15000;

  const wrong = document.querySelector("[data-error-position]");
  if (wrong) {
    const at = Number(wrong.dataset.errorPosition);
    wrong.focus();
    wrong.setSelectionRange(at, Math.min(at + 1, wrong.value.length));
  }

  function webLink(url) {
    try {
      const parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (error) {
      return null;
    }
  }

  function written(us, board) {
    const when = new Date(us / 1000);
    try {
      return new Intl.DateTimeFormat(board.dataset.locale.replace("_", "-"), {
        dateStyle: "medium",
        timeStyle: "medium",
        timeZone: board.dataset.zone,
      }).format(when);
    } catch (error) {
      return when.toLocaleString();
    }
  }

  function span(className, text) {
    const made = document.createElement("span");
    made.className = className;
    made.textContent = text;
    return made;
  }

  function post(match, board) {
    const item = document.createElement("li");
    item.className = "post arrived";
    item.dataset.post = match.post;
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.append(span("author", match.author));
    const langs = (match.langs || []).join(", ");
    if (langs) {
      const shown = span("langs", langs);
      shown.prepend(span("visually-hidden", "Language: "));
      meta.append(" ", shown);
    }
    const time = document.createElement("time");
    time.dateTime = new Date(match.created_at / 1000).toISOString();
    time.textContent = written(match.created_at, board);
    meta.append(" ", time);
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = match.text;
    item.append(meta, text);
    const link = webLink(match.url);
    if (link) {
      const open = document.createElement("p");
      open.className = "open";
      const anchor = document.createElement("a");
      anchor.href = link;
      anchor.rel = "noopener noreferrer nofollow";
      anchor.textContent = "Open the post";
      anchor.append(span("visually-hidden", " by " + match.author));
      open.append(anchor);
      item.append(open);
    }
    return item;
  }

  function columnOf(board, stream) {
    return board.querySelector('ol.posts[data-stream="' + CSS.escape(stream) + '"]');
  }

  function shownIn(column, uri) {
    return Array.from(column.children).filter((item) => item.dataset.post === uri);
  }

  function arrived(board, stream, match) {
    const column = columnOf(board, stream);
    if (!column || shownIn(column, match.post).length) return;
    column.prepend(post(match, board));
    while (column.children.length > MOST_SHOWN) column.lastElementChild.remove();
    const empty = column.parentElement.querySelector(".empty");
    if (empty) empty.remove();
  }

  function withdrawn(board, stream, uri) {
    const column = columnOf(board, stream);
    if (column) shownIn(column, uri).forEach((item) => item.remove());
  }

  function gone(board, stream) {
    const column = columnOf(board, stream);
    const status = column && column.parentElement.querySelector(".column-status");
    if (status) status.textContent = "This stream is not live: it may have been removed.";
  }

  function watch(board) {
    const status = document.getElementById("listening-status");
    const streams = Array.from(board.querySelectorAll("ol.posts[data-stream]"), (c) => c.dataset.stream);
    if (!streams.length || typeof EventSource === "undefined") return;
    const query = new URLSearchParams(streams.map((s) => ["stream", s]));
    if (board.dataset.after) query.set("after", board.dataset.after);

    function connect() {
      const source = new EventSource("/listening/live?" + query.toString());
      source.addEventListener("open", () => {
        status.textContent = "Live: new posts appear at the top of their column.";
        board.dataset.live = "true";
      });
      source.addEventListener("match", (event) => {
        const said = JSON.parse(event.data);
        arrived(board, said.stream, said.match);
      });
      source.addEventListener("withdrawn", (event) => {
        const said = JSON.parse(event.data);
        withdrawn(board, said.stream, said.post);
      });
      source.addEventListener("gone", (event) => gone(board, JSON.parse(event.data).stream));
      source.addEventListener("error", () => {
        board.dataset.live = "false";
        // A stream that ends is taken up again by the browser, where it was; one refused
        // (204: nothing streams, or the platform is down) is asked again a while later.
        if (source.readyState === EventSource.CLOSED) {
          status.textContent = "Not live at the moment: trying again shortly.";
          setTimeout(connect, RETRY_MS);
        }
      });
    }

    connect();
  }

  function watchInbox(list) {
    const unread = document.getElementById("inbox-unread");
    if (!unread || typeof EventSource === "undefined") return;

    // A new item as the page itself shows it (forms and all): the inbox page asked again,
    // the item taken from it. The item is on the live stream as soon as it is matched,
    // and in the inbox's store a moment later; it is asked for a few times until it is.
    async function added(item, tries) {
      const selector = '[data-id="' + CSS.escape(item.id) + '"]';
      if (list.querySelector(selector)) return;
      const answer = await fetch(location.pathname + location.search, { credentials: "same-origin" });
      if (!answer.ok) return;
      const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
      const made = fresh.querySelector("#inbox-items > " + selector);
      if (!made) {
        if (tries > 1) setTimeout(() => added(item, tries - 1), 500);
        return;
      }
      if (list.querySelector(selector)) return;
      list.prepend(document.importNode(made, true));
      const empty = document.getElementById("inbox-empty");
      if (empty) empty.remove();
    }

    function connect() {
      const source = new EventSource("/inbox/live");
      source.addEventListener("unread", (event) => {
        const count = JSON.parse(event.data).unread;
        unread.dataset.unread = String(count);
        unread.textContent = count.toLocaleString();
      });
      source.addEventListener("item", (event) => {
        // A new item is open, unassigned and untagged: a list of others does not show it.
        if (list.dataset.filtered !== "true") added(JSON.parse(event.data), 10);
      });
      source.addEventListener("withdrawn", (event) => {
        const post = JSON.parse(event.data).post;
        Array.from(list.children)
          .filter((item) => item.dataset.post === post)
          .forEach((item) => item.remove());
      });
      source.addEventListener("error", () => {
        if (source.readyState === EventSource.CLOSED) setTimeout(connect, RETRY_MS);
      });
    }

    connect();
  }

  const board = document.getElementById("listening-board");
  if (board) watch(board);
  const inbox = document.getElementById("inbox-items");
  if (inbox) watchInbox(inbox);
})();
