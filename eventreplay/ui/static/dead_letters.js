// The Dead letters page: "select all", and a confirmation before a discard (a discard cannot be undone).
"use strict";
(function () {
  const form = document.getElementById("dead-letter-form");
  if (!form) return;
  const boxes = () => Array.from(form.querySelectorAll('input[name="ids"]'));
  const all = document.getElementById("select-all");
  if (all) {
    all.hidden = false;
    all.addEventListener("change", () => boxes().forEach((box) => { box.checked = all.checked; }));
    form.addEventListener("change", (event) => {
      if (event.target.name !== "ids") return;
      const checked = boxes().filter((box) => box.checked).length;
      all.checked = checked === boxes().length;
      all.indeterminate = checked > 0 && checked < boxes().length;
    });
  }
  form.addEventListener("submit", (event) => {
    const button = event.submitter;
    const kind = button && button.dataset.confirm;
    if (!kind) return;
    const chosen = boxes().filter((box) => box.checked).length;
    const total = document.querySelector('[data-field="dead-letter-total"]');
    const question = kind === "discard-selected"
      ? `Discard ${chosen} selected dead letter${chosen === 1 ? "" : "s"} for good?`
      : `Discard all ${form.querySelector('input[name="reason"]').value ? "dead letters with this reason" : "dead letters (" + (total ? total.textContent.trim() : "") + ")"} for good?`;
    if (kind === "discard-selected" && chosen === 0) return;  // the server says to select some
    if (!window.confirm(question)) event.preventDefault();
  });
})();
