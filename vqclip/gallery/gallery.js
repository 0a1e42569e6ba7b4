// Filter by prompt, sort the cards within each group, and switch the loss axes, on the page
// itself: no server, no network. The URL fragment sets them, e.g. index.html#q=red&sort=loss&axes=own.
(function () {
  "use strict";
  const cards = Array.from(document.querySelectorAll(".card"));
  const cells = Array.from(document.querySelectorAll(".cell"));
  const boxes = Array.from(document.querySelectorAll(".cards"));
  const filter = document.getElementById("filter");
  const sort = document.getElementById("sort");
  const axes = document.getElementById("axes");
  const count = document.getElementById("count");
  const higherIsBetter = { score: true };

  function number(card, key) {
    const value = parseFloat(card.dataset[key]);
    return Number.isNaN(value) ? null : value;
  }

  function compare(key) {
    return function (a, b) {
      if (key === "order") return number(a, "order") - number(b, "order");
      const x = number(a, key), y = number(b, key);
      if (x === null || y === null) return (x === null) - (y === null);  // runs without one go last
      return higherIsBetter[key] ? y - x : x - y;
    };
  }

  function apply() {
    const words = filter.value.trim().toLowerCase();
    const matches = (el) => !words || el.dataset.prompt.includes(words);
    cards.forEach((card) => { card.hidden = !matches(card); });
    cells.forEach((cell) => { cell.classList.toggle("filtered", !matches(cell)); });
    boxes.forEach((box) => {
      Array.from(box.querySelectorAll(".card")).sort(compare(sort.value))
        .forEach((card) => box.appendChild(card));
    });
    document.body.classList.toggle("shared-axes", axes.checked);
    const shown = cards.filter((card) => !card.hidden).length;
    count.textContent = shown === cards.length ? cards.length + " runs"
      : shown + " of " + cards.length + " runs";
  }

  function fromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    filter.value = params.get("q") || "";
    if (params.has("sort")) sort.value = params.get("sort");
    axes.checked = params.get("axes") !== "own";
    apply();
  }

  filter.addEventListener("input", apply);
  sort.addEventListener("change", apply);
  axes.addEventListener("change", apply);
  window.addEventListener("hashchange", fromFragment);
  fromFragment();
})();
