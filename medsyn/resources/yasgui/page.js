// The MedSyn query page: YASGUI (vendored, no CDN) pointed at this server's /sparql, with the files of sparql/ as
// examples. /?query=...&run=1 opens a tab with that query and runs it; body[data-done] marks the rendered answer
// (the headless browser test waits for it).
(function () {
  "use strict";
  var endpoint = window.location.origin + "/sparql";
  var yasgui = new Yasgui(document.getElementById("yasgui"), {
    requestConfig: {
      endpoint: endpoint,
      method: "POST",
      acceptHeaderSelect: "application/sparql-results+json",
      acceptHeaderGraph: "text/turtle",
    },
    copyEndpointOnNewTab: true,
    endpointCatalogueOptions: { getData: function () { return [{ endpoint: endpoint }]; } },
    persistenceId: "medsyn-yasgui",
  });
  yasgui.on("queryResponse", function () {
    // YASR draws the answer right after this event; mark the page once it has.
    window.setTimeout(function () { document.body.setAttribute("data-done", "1"); }, 200);
  });
  var params = new URLSearchParams(window.location.search);
  var query = params.get("query");
  if (query) {
    var tab = yasgui.getTab();
    tab.setQuery(query);
    if (params.get("run") === "1") {
      tab.getYasqe().query();
    }
  }
  var select = document.getElementById("examples");
  fetch("/examples.json").then(function (r) { return r.json(); }).then(function (examples) {
    examples.forEach(function (ex, i) {
      var opt = document.createElement("option");
      opt.value = String(i);
      opt.textContent = ex.name;
      select.appendChild(opt);
    });
    select.addEventListener("change", function () {
      if (select.value === "") return;
      var ex = examples[Number(select.value)];
      var t = yasgui.addTab(true, { name: ex.name, requestConfig: { endpoint: endpoint } });
      t.setQuery(ex.query);
    });
  });
})();
