// behaviour: see app.js
