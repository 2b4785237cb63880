// The staff side of a video call: camera and microphone, the peer connection, and the call's
// signalling WebSocket on this node. The kiosk makes the offer; this side answers.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("video-config").textContent);
  var stateEl = document.getElementById("call-state");
  var errorEl = document.getElementById("call-error");
  var pc = null, socket = null, local = null;
  var chain = Promise.resolve();
  var LABELS = { waiting: "等待接听", connecting: "连接中", in_call: "通话中", ended: "已结束", failed: "失败" };

  function show(state, label) {
    stateEl.dataset.state = state;
    stateEl.textContent = label || LABELS[state] || state;
    if (state === "ended" || state === "failed") stop();
  }
  function fail(message) {
    errorEl.hidden = false;
    errorEl.textContent = message;
  }
  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }
  function keep(candidate) {
    return !window.sanjiCandidateFilter || window.sanjiCandidateFilter(candidate.candidate);
  }
  function stop() {
    if (local) local.getTracks().forEach(function (t) { t.stop(); });
    if (pc) pc.close();
  }

  function handle(message) {
    if (message.type === "state") { show(message.state, message.label); return null; }
    if (message.type === "offer") {
      return pc.setRemoteDescription({ type: "offer", sdp: message.sdp })
        .then(function () { return pc.createAnswer(); })
        .then(function (answer) { return pc.setLocalDescription(answer); })
        .then(function () { send({ type: "answer", sdp: pc.localDescription.sdp }); });
    }
    if (message.type === "candidate" && message.candidate) {
      return pc.addIceCandidate(message.candidate);
    }
    if (message.type === "error") fail(message.message);
    return null;
  }

  navigator.mediaDevices.getUserMedia({ video: true, audio: true }).then(function (stream) {
    local = stream;
    document.getElementById("local-video").srcObject = stream;
    pc = new RTCPeerConnection({ iceServers: config.iceServers || [] });
    stream.getTracks().forEach(function (t) { pc.addTrack(t, stream); });
    pc.ontrack = function (e) { document.getElementById("remote-video").srcObject = e.streams[0]; };
    pc.onicecandidate = function (e) {
      if (e.candidate && keep(e.candidate)) send({ type: "candidate", candidate: e.candidate.toJSON() });
    };
    pc.onconnectionstatechange = function () {
      if (pc.connectionState === "connected") send({ type: "connected" });
      if (pc.connectionState === "failed") fail("连接中断, 请结束通话并记录结果");
    };
    window.sanjiCall = { pc: pc };
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + config.ws);
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      chain = chain.then(function () { return handle(message); }).catch(function (e) { fail(String(e)); });
    };
    socket.onclose = function (event) { if (event.code >= 4400) fail("信令连接已断开"); };
  }).catch(function (e) { fail("无法打开摄像头或麦克风: " + e); });
})();
