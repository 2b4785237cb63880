// The kiosk side of a video call: camera and microphone, the offer, the township's signalling
// WebSocket, a clear state at each step, and the fallback offer when nobody answers in time or
// the link drops.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("video-config").textContent);
  var stateEl = document.getElementById("call-state");
  var hintEl = document.getElementById("call-hint");
  var LABELS = { waiting: "等待接听", connecting: "连接中", in_call: "通话中", ended: "已结束", failed: "失败" };
  var pc = null, socket = null, local = null, state = "waiting", dropTimer = null;
  var chain = Promise.resolve();

  function show(next, hint) {
    if (state === "ended" || state === "failed") return;
    state = next;
    stateEl.dataset.state = next;
    stateEl.textContent = LABELS[next] || next;
    if (hint !== undefined) hintEl.textContent = hint;
    if (next === "ended" || next === "failed") {
      if (local) local.getTracks().forEach(function (t) { t.stop(); });
      if (pc) pc.close();
      if (socket) socket.close();
      document.getElementById("hang-up").hidden = true;
      if (next === "failed") document.getElementById("fallback").hidden = false;
      else document.getElementById("ended").hidden = false;
    }
  }
  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }
  function fail(hint) {
    send({ type: "hangup" });
    show("failed", hint);
  }
  function keep(candidate) {
    return !window.sanjiCandidateFilter || window.sanjiCandidateFilter(candidate.candidate);
  }

  function offer() {
    return pc.createOffer()
      .then(function (o) { return pc.setLocalDescription(o); })
      .then(function () { send({ type: "offer", sdp: pc.localDescription.sdp }); });
  }
  function handle(message) {
    if (message.type === "state") {
      if (message.state === "waiting") show("waiting");
      else if (message.state === "connecting") show("connecting", message.staff_name ? "工作人员 " + message.staff_name + " 已接听" : "");
      else if (message.state === "in_call") show("in_call");
      else if (message.state === "ended") show("ended", "工作人员已结束通话");
      else if (message.state === "failed") show("failed");
      return null;
    }
    if (message.type === "ready") return offer();
    if (message.type === "answer") return pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    if (message.type === "candidate" && message.candidate) return pc.addIceCandidate(message.candidate);
    if (message.type === "error") fail(message.message);
    return null;
  }

  document.getElementById("hang-up").addEventListener("click", function () {
    send({ type: "hangup" });
    if (state === "waiting") show("failed", "已取消呼叫");
    else show("ended", "已挂断");
  });

  setTimeout(function () {
    if (state === "waiting") fail("镇街暂无工作人员接听");
  }, (config.answerTimeout || 60) * 1000);
  if (config.staffAvailable === 0) hintEl.textContent = "镇街暂无在线工作人员, 请稍候或改用其他方式";

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
      var s = pc.connectionState;
      if (s === "connected") {
        if (dropTimer) { clearTimeout(dropTimer); dropTimer = null; }
        send({ type: "connected" });
        show("in_call");
      } else if (s === "failed") {
        fail("视频连接中断");
      } else if (s === "disconnected" && !dropTimer) {
        dropTimer = setTimeout(function () { if (pc.connectionState !== "connected") fail("视频连接中断"); }, 5000);
      }
    };
    window.sanjiCall = { pc: pc };
    socket = new WebSocket(config.ws);
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      chain = chain.then(function () { return handle(message); }).catch(function (e) { fail(String(e)); });
    };
    socket.onclose = function () {
      if (state !== "ended" && state !== "failed") show("failed", "与镇街的连接已断开");
    };
  }).catch(function (e) { show("failed", "无法打开摄像头或麦克风: " + e); });
})();
