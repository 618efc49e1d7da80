// The bell in every page's header: the unread count, kept live by the person's stream of
// notifications (Server-Sent Events, /notifications/stream). On the notifications page,
// each new one is put at the top of the list as it arrives. Everything a notification says
// is set with textContent (never HTML), and a link only when it is a path of this app.
"use strict";

(function () {
  const count = document.getElementById("bell-count");
  if (!count || typeof EventSource === "undefined") return;
  const bell = document.getElementById("bell");
  const list = document.getElementById("notification-list");
  const summary = document.getElementById("notifications-summary");
  const csrf = document.querySelector("input[name=csrf]");
  const RETRY_MS = 15000;

  function show(unread) {
    count.textContent = String(unread);
    count.hidden = unread === 0;
    bell.setAttribute("aria-label", "Notifications: " + unread + " unread");
    if (summary) summary.textContent = unread + " unread. New ones appear here as they arrive.";
  }

  function appPath(link) {
    return typeof link === "string" && link.startsWith("/") && !link.startsWith("//");
  }

  function item(notification) {
    const li = document.createElement("li");
    li.className = "unread";
    li.dataset.id = notification.id;
    const head = document.createElement("p");
    const strong = document.createElement("strong");
    const unseen = document.createElement("span");
    unseen.className = "visually-hidden";
    unseen.textContent = "Unread: ";
    strong.append(unseen);
    if (appPath(notification.link)) {
      const link = document.createElement("a");
      link.href = notification.link;
      link.textContent = notification.title;
      strong.append(link);
    } else {
      strong.append(document.createTextNode(notification.title));
    }
    head.append(strong);
    li.append(head);
    if (notification.body) {
      const body = document.createElement("p");
      body.textContent = notification.body;
      li.append(body);
    }
    const when = document.createElement("p");
    when.className = "hint";
    const time = document.createElement("time");
    time.dateTime = notification.created_at;
    time.textContent = new Date(notification.created_at).toLocaleString();
    when.append(time);
    li.append(when);
    if (csrf) li.append(readForm(notification));
    return li;
  }

  function readForm(notification) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/notifications/read";
    form.className = "inline";
    for (const [name, value] of [["csrf", csrf.value], ["id", notification.id]]) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Mark read";
    button.setAttribute("aria-label", "Mark “" + notification.title + "” read");
    form.append(button);
    return form;
  }

  function arrived(notification) {
    show(Number(count.textContent || 0) + 1);
    if (!list || list.querySelector('[data-id="' + CSS.escape(notification.id) + '"]')) return;
    list.prepend(item(notification));
    list.dataset.newest = notification.id;
    const empty = document.getElementById("notifications-empty");
    if (empty) empty.remove();
  }

  function connect() {
    const after = list && list.dataset.newest !== "0" ? "?after=" + list.dataset.newest : "";
    const source = new EventSource("/notifications/stream" + after);
    source.addEventListener("unread", (event) => show(JSON.parse(event.data).unread));
    source.addEventListener("notification", (event) => arrived(JSON.parse(event.data)));
    source.addEventListener("error", () => {
      // A stream that ends is taken up again by the browser; one refused (204: no inbox
      // here, or the platform is down) is closed, and asked again a while later.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, RETRY_MS);
    });
  }

  connect();
})();
