// Tollway console (MIT, part of Tollway): the one behaviour pages need beyond HTML, the copy button.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var input = document.getElementById(button.getAttribute("data-copy"));
  input.select();
  var done = function () { button.textContent = "Copied"; };
  if (navigator.clipboard) { navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); }); }
  else { document.execCommand("copy"); done(); }
});
