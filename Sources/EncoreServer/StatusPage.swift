import EncoreMetrics
import EncoreTransport
import Foundation

/// The status page (`GET /status`, HTML) and its data (`GET /status.json`): what an operator
/// looks at before opening Prometheus. The page is one self-contained document (inline CSS,
/// script and SVG; no external asset), renders the data embedded in it at once and refreshes it
/// from `/status.json` every few seconds without a reload.
extension ServerMetrics {
    /// The status data as a JSON object (docs/operations.md describes the fields).
    func statusObject() -> [String: Any] {
        let now = Date().timeIntervalSince1970
        let data = dataServer.metricsReading()
        let admin = adminServer.metricsReading()
        let totals = decisionTotals()
        let offers = offerLabels()
        let active = engine.active.value
        let (counts, events, lastActivation) = registry.events.snapshot()

        // Recent history: one point per sampling interval, and a window over the last 5 minutes.
        var samples = history.all
        var current = StatusHistory.Sample(
            unixSeconds: now, treated: totals.treated, holdout: totals.holdout, latency: decideLatency(data),
            calls: 0, errors: 0, shown: totals.outcomeSum(0),
            accepted: totals.outcomeSum(1))
        for call in data.calls {
            current.calls += call.count
            if call.status != 0 { current.errors += call.count }
        }
        samples.append(current)
        var series: [[String: Any]] = []
        for i in samples.indices.dropFirst() {
            let a = samples[i - 1]
            let b = samples[i]
            let dt = b.unixSeconds - a.unixSeconds
            guard dt > 0.2 else { continue }
            let latency = b.latency.subtracting(a.latency)
            let calls = b.calls &- min(a.calls, b.calls)
            let errors = b.errors &- min(a.errors, b.errors)
            series.append([
                "t": b.unixSeconds,
                "decisions_per_second": Double(
                    (b.treated + b.holdout) &- min(a.treated + a.holdout, b.treated + b.holdout)) / dt,
                "p50_ms": Self.json(latency.quantileSeconds(0.5).map { $0 * 1000 }),
                "p99_ms": Self.json(latency.quantileSeconds(0.99).map { $0 * 1000 }),
                "error_ratio": calls > 0 ? Double(errors) / Double(calls) : 0,
            ])
        }
        let windowStart = samples.first { now - $0.unixSeconds <= 300 } ?? current
        let windowSeconds = max(now - windowStart.unixSeconds, 0)
        let windowLatency = current.latency.subtracting(windowStart.latency)
        let windowDecisions = (current.treated + current.holdout) &- (windowStart.treated + windowStart.holdout)

        // Offers.
        var offerRows: [[String: Any]] = []
        for r in 0..<OutcomeMetrics.rows where r < offers.count || totals.placements[r] > 0 {
            let o = (0..<5).map { totals.outcome(r, $0) }
            offerRows.append([
                "offer": r < offers.count ? offers[r] : "_other",
                "placements": totals.placements[r], "shown": o[0], "accepted": o[1], "declined": o[2], "ignored": o[3],
                "revenue_cents": o[4], "acceptance_rate": Self.json(o[0] > 0 ? Double(o[1]) / Double(o[0]) : nil),
                "budget_exhausted": totals.budgetExhausted[r],
            ])
        }

        // Holdout vs treated.
        let shown = totals.outcomeSum(0)
        let accepted = totals.outcomeSum(1)
        let offerRevenue = totals.outcomeSum(4)
        func group(_ g: Int, _ n: UInt64) -> (object: [String: Any], mean: Double?, variance: Double?) {
            let mean = n > 0 ? Double(totals.orderValueCents[g]) / Double(n) : nil
            var variance: Double? = nil
            if let mean, n > 1 {
                variance = max(0, (totals.orderValueSquares[g] - Double(n) * mean * mean) / Double(n - 1))
            }
            var object: [String: Any] = ["decisions": n, "order_value_mean_cents": Self.json(mean)]
            if g == 0 {
                object["accepted"] = accepted
                object["shown"] = shown
                object["conversion"] = Self.json(n > 0 ? Double(accepted) / Double(n) : nil)
                object["offer_revenue_per_decision_cents"] = Self.json(n > 0 ? Double(offerRevenue) / Double(n) : nil)
            } else {
                object["conversion"] = n > 0 ? 0.0 : NSNull()
                object["offer_revenue_per_decision_cents"] = n > 0 ? 0.0 : NSNull()
            }
            return (object, mean, variance)
        }
        let treated = group(0, totals.treated)
        let holdout = group(1, totals.holdout)
        var lift: [String: Any] = ["treated": treated.object, "holdout": holdout.object]
        if let mt = treated.mean, let mh = holdout.mean, let vt = treated.variance, let vh = holdout.variance {
            // Welch's normal interval for the difference of the two groups' mean order values.
            let se = (vt / Double(totals.treated) + vh / Double(totals.holdout)).squareRoot()
            lift["order_value_lift_cents"] = mt - mh
            lift["order_value_lift_interval_95"] = [mt - mh - 1.96 * se, mt - mh + 1.96 * se]
            lift["relative_lift"] = Self.json(mh > 0 ? (mt - mh) / mh : nil)
        }

        // Health.
        var health: [String: Any] = [
            "counters": [
                "rule_counter_evictions": engine.counters.evictions.load(ordering: .relaxed),
                "unknown_candidates": engine.unknownCandidatesIgnored.load(ordering: .relaxed),
                "outcomes_unverified": engine.unverifiedOutcomes.load(ordering: .relaxed),
                "outcomes_foreign_decision_id": engine.unattributedOutcomes.load(ordering: .relaxed),
                "outcomes_unknown_offer": totals.unknownOfferOutcomes,
                "outcomes_repeated": decisions.outcomes.repeats.repeats.load(ordering: .relaxed),
                "uniform_fallbacks": engine.nonFiniteScoreFallbacks.load(ordering: .relaxed),
                "budget_exhausted": totals.budgetExhausted.reduce(0, +),
            ] as [String: Any],
            "connections": [
                "data_open": data.connectionsOpen, "admin_open": admin.connectionsOpen,
                "data_accepted": data.connectionsAccepted,
            ] as [String: Any],
            "process": [
                "resident_memory_bytes": Self.json(ServerMetrics.residentBytes().map(Double.init)),
                "open_fds": Self.json(ServerMetrics.openFileDescriptors().map(Double.init)),
                "uptime_seconds": now - startTimeSeconds, "version": ServerMetrics.version,
            ] as [String: Any],
        ]
        if let logWriter {
            let m = logWriter.metrics()
            health["log"] =
                [
                    "records_written": m.recordsWritten, "records_dropped": m.recordsDropped,
                    "bytes_written": m.bytesWritten, "rotations": m.rotations, "ring_pending_bytes": m.pendingBytes,
                    "ring_capacity_bytes": m.ringBytes, "directory": logWriter.directory,
                ] as [String: Any]
        } else {
            health["log"] = NSNull()
        }

        return [
            "generated_at": now,
            "model": [
                "version": active.version, "exploration": ModelRegistry.describe(active.exploration),
                "seconds_since_activation": max(0, now - Double(lastActivation) / 1000),
                "pushes": counts[.pushed, default: 0], "activations": counts[.activated, default: 0],
                "rollbacks": counts[.rolledBack, default: 0], "gate_refusals": counts[.gateRefused, default: 0],
                "push_refusals": counts[.pushRefused, default: 0],
                "history": events.reversed().map { e in
                    [
                        "time": Double(e.unixMillis) / 1000, "kind": e.kind.rawValue, "version": e.version,
                        "detail": e.detail,
                    ]
                },
            ] as [String: Any],
            "totals": [
                "decisions": totals.treated + totals.holdout, "treated": totals.treated, "holdout": totals.holdout,
                "calls": current.calls, "errors": current.errors,
            ] as [String: Any],
            "window": [
                "seconds": windowSeconds,
                "decisions_per_second": windowSeconds > 0 ? Double(windowDecisions) / windowSeconds : 0,
                "p50_ms": Self.json(windowLatency.quantileSeconds(0.5).map { $0 * 1000 }),
                "p99_ms": Self.json(windowLatency.quantileSeconds(0.99).map { $0 * 1000 }),
            ] as [String: Any],
            "series": series,
            "offers": offerRows,
            "lift": lift,
            "health": health,
        ]
    }

    private static func json(_ value: Double?) -> Any { value.map { $0.isFinite ? $0 : 0 } ?? NSNull() }

    /// `/status.json`: the status object, with `<` escaped so it can sit inside a script element.
    func statusJSON() -> [UInt8] {
        let data =
            (try? JSONSerialization.data(withJSONObject: statusObject(), options: [.sortedKeys])) ?? Data("{}".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 64)
        for byte in data {
            if byte == UInt8(ascii: "<") {
                out.append(contentsOf: Array("\\u003c".utf8))
            } else {
                out.append(byte)
            }
        }
        return out
    }

    /// `/status`: the page with the current data embedded (rendered before any fetch).
    func statusHTML() -> [UInt8] {
        let json = String(decoding: statusJSON(), as: UTF8.self)
        return Array(StatusPage.html.replacingOccurrences(of: "__STATUS_JSON__", with: json).utf8)
    }
}

/// The page's markup, style and script (no external asset: it must work from a phone on a
/// network with nothing but the admin port).
enum StatusPage {
    static let html = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Encore status</title>
        <style>
        :root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f8f9fb;--a:#2e6be6;--b:#e8772e;--ok:#1a7f37;--bad:#c4320a}
        *{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
        header{padding:12px 16px;background:#fff;border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline}
        header h1{font-size:18px;margin:0}header span{color:var(--muted);font-size:13px}
        main{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px;padding:12px}
        section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px;min-width:0}
        h2{font-size:15px;margin:0 0 8px}table{border-collapse:collapse;width:100%;font-size:13px}
        td,th{padding:4px 6px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}td:first-child,th:first-child{text-align:left}
        th{color:var(--muted);font-weight:600}.big{font-size:26px;font-weight:700}.muted{color:var(--muted);font-size:12px}
        .kpis{display:flex;flex-wrap:wrap;gap:12px 24px}.kpis div{min-width:90px}.scroll{overflow-x:auto}
        svg{width:100%;height:auto;display:block}.bad{color:var(--bad)}.ok{color:var(--ok)}
        </style></head><body>
        <header><h1>Encore</h1><span>model <b id="model-version"></b></span><span id="model-age"></span><span id="updated"></span></header>
        <main>
        <section><h2>Traffic</h2><div class="kpis">
          <div><div class="big" id="decisions-per-second"></div><div class="muted">decisions/s (5 min)</div></div>
          <div><div class="big" id="p50"></div><div class="muted">p50 ms</div></div>
          <div><div class="big" id="p99"></div><div class="muted">p99 ms</div></div>
          <div><div class="big" id="decisions-total"></div><div class="muted">decisions since start</div></div>
          <div><div class="big" id="error-ratio"></div><div class="muted">error ratio (all calls)</div></div></div>
          <svg id="plot-rate" viewBox="0 0 320 120" role="img" aria-label="decisions per second"></svg>
          <svg id="plot-latency" viewBox="0 0 320 120" role="img" aria-label="Decide latency p50 and p99"></svg>
        </section>
        <section><h2>Offers</h2><svg id="plot-acceptance" viewBox="0 0 320 140" role="img" aria-label="acceptance rate per offer"></svg>
          <div class="scroll"><table id="offers"><thead><tr><th>offer</th><th>placed</th><th>shown</th><th>accepted</th><th>rate</th><th>revenue</th></tr></thead><tbody></tbody></table></div></section>
        <section><h2>Holdout vs treated</h2><table id="lift"><thead><tr><th></th><th>treated</th><th>holdout</th></tr></thead><tbody></tbody></table>
          <p id="lift-summary"></p><svg id="plot-lift" viewBox="0 0 320 110" role="img" aria-label="order value per decision"></svg>
          <p class="muted">Holdout customers get no offer, so their offer conversion is 0 by construction; the lift compares order value per decision (Welch 95% interval). Offline: encore-learn lift.</p></section>
        <section><h2>Model</h2><div id="model-counts" class="muted"></div><div class="scroll"><table id="history"><thead><tr><th>when (UTC)</th><th>event</th><th>version</th></tr></thead><tbody></tbody></table></div></section>
        <section><h2>Health</h2><table id="health"><tbody></tbody></table></section>
        </main>
        <script id="initial-data" type="application/json">__STATUS_JSON__</script>
        <script>
        "use strict";
        const $=id=>document.getElementById(id);
        const fmt=(v,d)=>v==null?"–":Number(v).toLocaleString("en-US",{maximumFractionDigits:d==null?0:d,minimumFractionDigits:d==null?0:Math.min(d,1)});
        const money=c=>c==null?"–":(c/100).toLocaleString("en-US",{maximumFractionDigits:2,minimumFractionDigits:2});
        const esc=s=>String(s).replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
        function rows(tbody,list){tbody.innerHTML=list.map(r=>"<tr"+(r.attr||"")+">"+r.cells.map(c=>"<td>"+c+"</td>").join("")+"</tr>").join("");}
        function line(svg,series,keys,colors,unit){
          const W=320,H=120,L=34,B=16,pts=series.filter(p=>keys.some(k=>p[k]!=null));
          let max=0;for(const p of pts)for(const k of keys)if(p[k]!=null)max=Math.max(max,p[k]);
          max=max>0?max*1.15:1;const t0=pts.length?pts[0].t:0,t1=pts.length?pts[pts.length-1].t:1,span=Math.max(t1-t0,1);
          let out=`<line x1="${L}" y1="${H-B}" x2="${W}" y2="${H-B}" stroke="#ccc"/><text x="2" y="10" font-size="9" fill="#667085">${fmt(max,max<10?2:0)}${unit}</text><text x="2" y="${H-B}" font-size="9" fill="#667085">0</text>`;
          keys.forEach((k,i)=>{const d=pts.filter(p=>p[k]!=null).map(p=>`${(L+(p.t-t0)/span*(W-L)).toFixed(1)},${(H-B-p[k]/max*(H-B-6)).toFixed(1)}`).join(" ");
            if(d)out+=`<polyline fill="none" stroke="${colors[i]}" stroke-width="1.6" points="${d}"/>`;
            out+=`<text x="${L+4+i*70}" y="${H-2}" font-size="10" fill="${colors[i]}">${k.replace("_ms","").replace("decisions_per_second","decisions/s")}</text>`;});
          if(!pts.length)out+=`<text x="${L+8}" y="60" font-size="11" fill="#667085">collecting…</text>`;
          svg.innerHTML=out;}
        function bars(svg,items,colorOf,label){
          const W=320,row=18,H=Math.max(items.length*row+8,30);svg.setAttribute("viewBox",`0 0 ${W} ${H}`);
          const max=Math.max(...items.map(i=>i.value||0),1e-9);
          svg.innerHTML=items.map((it,i)=>`<text x="0" y="${i*row+13}" font-size="10">${esc(it.name).slice(0,18)}</text><rect x="110" y="${i*row+3}" height="12" width="${((it.value||0)/max*170).toFixed(1)}" fill="${colorOf(it,i)}"/><text x="${114+(it.value||0)/max*170}" y="${i*row+13}" font-size="10">${label(it)}</text>`).join("")||`<text x="4" y="18" font-size="11" fill="#667085">no offers</text>`;}
        function render(d){
          $("model-version").textContent=d.model.version;
          $("model-age").textContent="active for "+fmt(d.model.seconds_since_activation/60,1)+" min";
          $("updated").textContent="updated "+new Date(d.generated_at*1000).toISOString().slice(11,19)+" UTC";
          $("decisions-per-second").textContent=fmt(d.window.decisions_per_second,1);
          $("p50").textContent=fmt(d.window.p50_ms,3);$("p99").textContent=fmt(d.window.p99_ms,3);
          $("decisions-total").textContent=fmt(d.totals.decisions);$("decisions-total").dataset.value=d.totals.decisions;
          const er=d.totals.calls?d.totals.errors/d.totals.calls:0;$("error-ratio").textContent=fmt(er*100,2)+"%";$("error-ratio").className="big "+(er>0.01?"bad":"ok");
          line($("plot-rate"),d.series,["decisions_per_second"],["#2e6be6"],"/s");
          line($("plot-latency"),d.series,["p50_ms","p99_ms"],["#2e6be6","#e8772e"]," ms");
          const offers=d.offers;
          rows($("offers").tBodies[0],offers.map(o=>({attr:` data-offer="${esc(o.offer)}" data-shown="${o.shown}" data-accepted="${o.accepted}" data-placements="${o.placements}"`,
            cells:[esc(o.offer),fmt(o.placements),fmt(o.shown),fmt(o.accepted),o.acceptance_rate==null?"–":fmt(o.acceptance_rate*100,1)+"%",money(o.revenue_cents)]})));
          bars($("plot-acceptance"),offers.map(o=>({name:o.offer,value:o.acceptance_rate})),()=>"#2e6be6",it=>it.value==null?"–":fmt(it.value*100,1)+"%");
          const t=d.lift.treated,h=d.lift.holdout;
          rows($("lift").tBodies[0],[
            {attr:' data-row="decisions"',cells:["decisions",fmt(t.decisions),fmt(h.decisions)]},
            {cells:["offer conversion",t.conversion==null?"–":fmt(t.conversion*100,2)+"%",h.conversion==null?"–":fmt(h.conversion*100,2)+"%"]},
            {cells:["order value / decision",money(t.order_value_mean_cents),money(h.order_value_mean_cents)]},
            {cells:["offer revenue / decision",money(t.offer_revenue_per_decision_cents),money(h.offer_revenue_per_decision_cents)]}]);
          const iv=d.lift.order_value_lift_interval_95;
          $("lift-summary").textContent=iv?`Lift in order value per decision: ${money(d.lift.order_value_lift_cents)} (95% interval ${money(iv[0])} to ${money(iv[1])})`+(d.lift.relative_lift==null?"":`, ${fmt(d.lift.relative_lift*100,1)}%`):"Lift: needs at least two decisions in each group.";
          bars($("plot-lift"),[{name:"treated",value:t.order_value_mean_cents},{name:"holdout",value:h.order_value_mean_cents}],(it,i)=>i?"#e8772e":"#2e6be6",it=>money(it.value));
          const m=d.model;$("model-counts").textContent=`${m.exploration} · pushes ${m.pushes} · activations ${m.activations} · rollbacks ${m.rollbacks} · gate refusals ${m.gate_refusals} · refused pushes ${m.push_refusals}`;
          rows($("history").tBodies[0],m.history.slice(0,12).map(e=>({cells:[new Date(e.time*1000).toISOString().slice(0,19).replace("T"," "),esc(e.kind),esc(e.version)]})));
          const c=d.health.counters,lg=d.health.log,p=d.health.process,cn=d.health.connections;
          const hr=[["log records written",lg?fmt(lg.records_written):"logging off"],["log records dropped",lg?`<span class="${lg.records_dropped?"bad":"ok"}">${fmt(lg.records_dropped)}</span>`:"–"],
            ["log bytes written",lg?fmt(lg.bytes_written):"–"],["log rotations",lg?fmt(lg.rotations):"–"],["log ring backlog",lg?fmt(lg.ring_pending_bytes)+" B":"–"],
            ["rule counter evictions",fmt(c.rule_counter_evictions)],["unknown candidate ids",fmt(c.unknown_candidates)],["outcomes: unverified ids",fmt(c.outcomes_unverified)],
            ["outcomes: foreign decision ids",fmt(c.outcomes_foreign_decision_id)],["outcomes: unknown offer",fmt(c.outcomes_unknown_offer)],["outcomes: repeats",fmt(c.outcomes_repeated)],
            ["budget exhaustions",fmt(c.budget_exhausted)],["uniform fallbacks",fmt(c.uniform_fallbacks)],["connections open (data/admin)",fmt(cn.data_open)+" / "+fmt(cn.admin_open)],
            ["resident memory",fmt(p.resident_memory_bytes/1048576,1)+" MiB"],["open fds",fmt(p.open_fds)],["uptime",fmt(p.uptime_seconds/60,1)+" min"],["version",esc(p.version)]];
          rows($("health").tBodies[0],hr.map(r=>({cells:r})));
        }
        render(JSON.parse($("initial-data").textContent));
        async function refresh(){try{const r=await fetch("status.json",{cache:"no-store",credentials:"same-origin"});if(r.ok)render(await r.json());}catch(e){}}
        setInterval(refresh,5000);
        </script></body></html>
        """#
}
