// The composer of the Publish page: a preview of the post on each chosen channel as that
// network shows it, counted in its own unit against the channel's limit; the parts of a
// thread; images with their alt text; and the draft kept as one types.
//
// The counts are the server's (hubbub.publishing.text), written again here so that a
// person sees before scheduling what the API would refuse: Bluesky counts graphemes
// (Intl.Segmenter's, Unicode's extended grapheme clusters, as the `regex` module's \X);
// Mastodon counts code points, each URL as the instance's `url_length` and a mention
// @user@domain as @user. The patterns are text.py's, with Python's \s and \w spelled out,
// since JavaScript's differ. Everything a person typed is put in the page as text nodes,
// never as HTML.
"use strict";

const hubbubText = (function () {
  // Python's str.isspace(): JavaScript's \s adds U+FEFF and lacks U+001C–U+001F, U+0085.
  const SPACE = "\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
  // Python's \w on str: letters, numbers and the underscore (JavaScript's is ASCII only).
  const WORD = "\\p{L}\\p{N}_";
  const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?";
  const LAST_LABEL = "[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?";
  const MENTION = new RegExp(`(?:^|(?<=[${SPACE}(]))@((?:${LABEL}\\.)+${LAST_LABEL})`, "gu");
  const LINK = new RegExp(`(?:^|(?<=[${SPACE}(]))(https?:\\/\\/[^${SPACE}]+)`, "giu");
  const TAG = new RegExp(`(?:^|(?<=[${SPACE}]))[#\\uff03]([^${SPACE}]+)`, "gu");
  const MASTODON_MENTION = new RegExp(
    `(?:^|(?<=[^${WORD}/]))@([${WORD}]+)@[${WORD}.-]+[${WORD}]`,
    "gu"
  );
  const MASTODON_SHOWN_MENTION = new RegExp(
    `(?:^|(?<=[^${WORD}/]))@[${WORD}]+(?:@[${WORD}.-]+[${WORD}])?`,
    "gu"
  );
  const MASTODON_TAG = new RegExp(`(?:^|(?<=[^${WORD}/)]))#([${WORD}]+)`, "gu");
  const TRAILING = ".,;:!?)\"'";
  const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

  function occurrences(text, character) {
    return text.split(character).length - 1;
  }

  // A link without the punctuation that ends its sentence; a closing parenthesis stays
  // when the link opened it.
  function trimmed(uri) {
    while (uri && TRAILING.includes(uri[uri.length - 1])) {
      if (uri.endsWith(")") && occurrences(uri, "(") >= occurrences(uri, ")")) break;
      uri = uri.slice(0, -1);
    }
    return uri;
  }

  function graphemes(text) {
    let count = 0;
    for (const _ of segmenter.segment(text)) count++;
    return count;
  }

  function codePoints(text) {
    let count = 0;
    for (const _ of text) count++;
    return count;
  }

  function mastodonLength(text, urlLength) {
    const linked = text.replace(
      LINK,
      (_, uri) => "x".repeat(urlLength) + uri.slice(trimmed(uri).length)
    );
    return codePoints(linked.replace(MASTODON_MENTION, (_, user) => "@" + user));
  }

  function length(network, text, urlLength) {
    return network === "bluesky" ? graphemes(text) : mastodonLength(text, urlLength);
  }

  function* matches(pattern, text) {
    pattern.lastIndex = 0;
    for (const found of text.matchAll(pattern)) yield found;
  }

  // What a network highlights in `text`: [{start, end, kind}] in UTF-16 offsets, in
  // order, none overlapping (Bluesky: text.py's facets; Mastodon: its own patterns).
  function spans(network, text) {
    const found = [];
    for (const m of matches(LINK, text)) {
      found.push({ start: m.index, end: m.index + trimmed(m[1]).length, kind: "link" });
    }
    const mentions = network === "bluesky" ? MENTION : MASTODON_SHOWN_MENTION;
    for (const m of matches(mentions, text)) {
      found.push({ start: m.index, end: m.index + m[0].length, kind: "mention" });
    }
    if (network === "bluesky") {
      for (const m of matches(TAG, text)) {
        let tag = m[1];
        while (tag && TRAILING.includes(tag[tag.length - 1])) tag = tag.slice(0, -1);
        if (!tag || /^\p{Nd}+$/u.test(tag) || codePoints(tag) > 64) continue;
        found.push({ start: m.index, end: m.index + 1 + tag.length, kind: "tag" });
      }
    } else {
      for (const m of matches(MASTODON_TAG, text)) {
        if (/^\p{Nd}+$/u.test(m[1])) continue;
        found.push({ start: m.index, end: m.index + m[0].length, kind: "tag" });
      }
    }
    found.sort((a, b) => a.start - b.start);
    let reached = 0;
    return found.filter((span) => {
      if (span.start < reached) return false;
      reached = span.end;
      return true;
    });
  }

  return { graphemes, mastodonLength, length, spans };
})();

(function () {
  const form = document.getElementById("compose");
  if (!form) return;
  const csrf = form.dataset.csrf;
  const first = document.getElementById("compose-text");
  const parts = document.getElementById("thread-parts");
  const addPart = document.getElementById("add-part");
  const attached = document.getElementById("attached");
  const previews = document.getElementById("previews");
  const summary = document.getElementById("preview-summary");
  const MASTODON_SHOWN_URL = 30; // Mastodon's web app shows this much of a link, then …

  function element(tag, className, text) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined) made.textContent = text;
    return made;
  }

  function channels() {
    return [...form.querySelectorAll("input[name=channel]:checked")].map((box) => ({
      id: box.value,
      network: box.dataset.network,
      account: box.dataset.account,
      characters: Number(box.dataset.characters),
      media: Number(box.dataset.media),
      urlLength: Number(box.dataset.urlLength),
    }));
  }

  function texts() {
    return [first, ...parts.querySelectorAll("textarea")].map((box) => box.value);
  }

  function images() {
    return [...attached.querySelectorAll("li")].map((item) => ({
      id: item.querySelector("input[name=media]").value,
      alt: item.dataset.alt,
    }));
  }

  // How Mastodon's web app writes a link: without its scheme and www., cut at 30.
  function shownLink(uri) {
    const bare = uri.replace(/^https?:\/\/(www\.)?/i, "");
    return bare.length > MASTODON_SHOWN_URL ? bare.slice(0, MASTODON_SHOWN_URL) + "…" : bare;
  }

  function written(network, text) {
    const shown = element("p", "text");
    let at = 0;
    for (const span of hubbubText.spans(network, text)) {
      shown.append(text.slice(at, span.start));
      const piece = text.slice(span.start, span.end);
      const mark = element("span", span.kind);
      if (span.kind === "link" && network === "mastodon") {
        mark.textContent = shownLink(piece);
        mark.title = piece;
      } else {
        mark.textContent = piece;
      }
      shown.append(mark);
      at = span.end;
    }
    shown.append(text.slice(at));
    return shown;
  }

  function counted(channel, text) {
    const used = hubbubText.length(channel.network, text, channel.urlLength);
    const unit = channel.network === "bluesky" ? "graphemes" : "characters";
    const over = used - channel.characters;
    const line = element("p", "count", `${used} / ${channel.characters} ${unit}`);
    if (over > 0) {
      line.classList.add("over");
      line.append(element("strong", null, ` · ${over} over`));
    }
    return { line, over: over > 0 };
  }

  function imageLine(channel, shown) {
    const missing = shown.filter((image) => !image.alt).length;
    const over = shown.length - channel.media;
    const line = element("p", "count", `${shown.length} / ${channel.media} images`);
    if (over > 0) {
      line.classList.add("over");
      line.append(element("strong", null, ` · ${over} over`));
    }
    if (missing) {
      line.classList.add("over");
      line.append(element("strong", null, ` · ${missing} without alt text`));
    }
    return { line, over: over > 0 || missing > 0 };
  }

  function preview(channel, written_parts, shown) {
    const box = element("article", "preview " + channel.network);
    const heading = `${channel.account} (${channel.network === "bluesky" ? "Bluesky" : "Mastodon"})`;
    box.append(element("h3", null, heading));
    box.setAttribute("aria-label", "On " + heading);
    let trouble = false;
    written_parts.forEach((text, i) => {
      const part = element("div", "preview-part");
      if (written_parts.length > 1) part.append(element("p", "part-number", `Part ${i + 1} of ${written_parts.length}`));
      const count = counted(channel, text);
      part.append(written(channel.network, text), count.line);
      if (i === 0 && shown.length) {
        const line = imageLine(channel, shown);
        part.append(line.line);
        trouble ||= line.over;
      }
      trouble ||= count.over;
      box.append(part);
    });
    if (trouble) box.classList.add("over");
    return { box, trouble, heading };
  }

  function drawPreviews() {
    const chosen = channels();
    const written_parts = texts().filter((text, i) => i === 0 || text.trim());
    const shown = images();
    const drawn = chosen.map((channel) => preview(channel, written_parts, shown));
    previews.replaceChildren(...drawn.map((d) => d.box));
    const troubled = drawn.filter((d) => d.trouble).map((d) => d.heading);
    summary.textContent = !chosen.length
      ? "Choose a channel to see the post as it will look there."
      : troubled.length
        ? "Does not fit: " + troubled.join(", ") + "."
        : "Fits every chosen channel.";
  }

  // The parts of a thread after the first: numbered in order, each removable.
  function renumber() {
    [...parts.querySelectorAll(".part")].forEach((part, i) => {
      const n = i + 2;
      part.querySelector("label").textContent = `Part ${n}`;
      part.querySelector("label").htmlFor = `part-${n}`;
      part.querySelector("textarea").id = `part-${n}`;
      part.querySelector("button").textContent = `Remove part ${n}`;
    });
  }

  function newPart() {
    const part = element("div", "part");
    const label = element("label");
    const box = element("textarea");
    box.name = "thread";
    box.rows = 3;
    box.maxLength = 10000;
    const remove = element("button", "secondary");
    remove.type = "button";
    remove.dataset.removePart = "";
    part.append(label, box, remove);
    parts.append(part);
    renumber();
    box.focus();
    changed();
  }

  parts.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-remove-part]");
    if (!remove) return;
    remove.closest(".part").remove();
    renumber();
    first.focus();
    changed();
  });
  addPart.hidden = false;
  addPart.addEventListener("click", newPart);

  // Images: uploaded as they are attached (the API keeps them and answers an id); the
  // form sends the ids.
  const attach = form.querySelector(".attach");
  const file = document.getElementById("image-file");
  const alt = document.getElementById("image-alt");
  const imageStatus = document.getElementById("image-status");
  attach.hidden = false;

  function attachedItem(media, name, dataUrl) {
    const item = element("li");
    item.dataset.alt = media.alt || "";
    const id = element("input");
    id.type = "hidden";
    id.name = "media";
    id.value = media.id;
    item.append(id);
    if (dataUrl) {
      const thumbnail = element("img", "thumbnail");
      thumbnail.src = dataUrl;
      thumbnail.alt = "";
      item.append(thumbnail);
    }
    item.append(element("span", "image-name", name));
    item.append(
      media.alt
        ? element("span", "alt", "Alt text: " + media.alt)
        : element("span", "alt missing", "No alt text")
    );
    const remove = element("button", "secondary", "Remove");
    remove.type = "button";
    remove.dataset.removeImage = "";
    remove.setAttribute("aria-label", "Remove the image " + name);
    item.append(remove);
    return item;
  }

  function dataUrlOf(chosen) {
    return new Promise((resolve) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => resolve(null);
      reader.readAsDataURL(chosen);
    });
  }

  document.getElementById("attach-image").addEventListener("click", async () => {
    const chosen = file.files[0];
    if (!chosen) {
      imageStatus.textContent = "Choose an image first.";
      return;
    }
    const body = new FormData();
    body.append("file", chosen);
    body.append("alt", alt.value);
    imageStatus.textContent = "Uploading…";
    const answer = await fetch("/publish/media", {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "x-csrf-token": csrf, accept: "application/json" },
    });
    const said = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      imageStatus.textContent = "Not attached: " + (said.detail || "the platform answered " + answer.status);
      return;
    }
    attached.append(attachedItem(said, chosen.name, await dataUrlOf(chosen)));
    imageStatus.textContent = said.alt ? "Attached." : "Attached, with no alt text.";
    file.value = "";
    alt.value = "";
    changed();
  });

  attached.addEventListener("click", (event) => {
    const remove = event.target.closest("[data-remove-image]");
    if (!remove) return;
    remove.closest("li").remove();
    imageStatus.textContent = "Removed.";
    changed();
  });

  // The draft: saved a moment after typing stops, and at once when the page is hidden or
  // closed (a keepalive request outlives the page). Saves go one at a time, in order.
  const draftStatus = document.getElementById("draft-status");
  const kept = form.querySelector("input[name=draft]");
  const SAVE_AFTER_MS = 800;
  let timer = null;
  let saving = null;
  let unsaved = false;
  let scheduling = false;

  function drafted() {
    const at = form.querySelector("input[name=at]").value;
    return {
      text: first.value,
      channels: channels().map((c) => c.id),
      thread: texts().slice(1),
      media: images().map((image) => image.id),
      at: at || null,
      language: form.querySelector("[name=language]").value.trim() || null,
      spoiler: form.querySelector("[name=spoiler]").value.trim() || null,
      visibility: form.querySelector("[name=visibility]").value,
    };
  }

  async function put(body) {
    const answer = await fetch("/publish/drafts/" + form.dataset.draft, {
      method: "PUT",
      body: JSON.stringify(body),
      keepalive: true,
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf, accept: "application/json" },
    });
    if (answer.ok) return null;
    if (answer.status === 401) return "your session ended: sign in again";
    const said = await answer.json().catch(() => ({}));
    return said.detail || "the platform answered " + answer.status;
  }

  async function save() {
    timer = null;
    if (saving || scheduling) return;
    unsaved = false;
    draftStatus.textContent = "Saving…";
    let problem;
    try {
      saving = put(drafted());
      problem = await saving;
    } catch (error) {
      problem = "the platform could not be reached";
    } finally {
      saving = null;
    }
    if (problem) {
      unsaved = true;
      draftStatus.textContent = "Not saved: " + problem + ".";
      return;
    }
    kept.value = form.dataset.draft;
    if (unsaved && !timer) timer = setTimeout(save, SAVE_AFTER_MS);
    else if (!unsaved) draftStatus.textContent = "Saved as a draft.";
  }

  function changed() {
    drawPreviews();
    if (scheduling) return;
    unsaved = true;
    draftStatus.textContent = "Not saved yet.";
    clearTimeout(timer);
    timer = setTimeout(save, SAVE_AFTER_MS);
  }

  function saveNow() {
    if (!unsaved || scheduling) return;
    clearTimeout(timer);
    timer = null;
    unsaved = false;
    put(drafted()).catch(() => {});
  }

  function edited(event) {
    if (!event.target.closest(".attach")) changed(); // an image counts once attached
  }

  form.addEventListener("input", edited);
  form.addEventListener("change", edited);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") saveNow();
  });
  window.addEventListener("pagehide", saveNow);
  form.addEventListener("submit", (event) => {
    // Scheduling removes the draft: nothing may save it again after, and a save under
    // way ends first, so the draft it made goes with the post.
    scheduling = true;
    clearTimeout(timer);
    if (saving) {
      event.preventDefault();
      saving.finally(() => form.submit());
    }
  });

  drawPreviews();
})();
