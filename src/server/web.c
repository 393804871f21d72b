/* web.c - the page sdc serve shows at /: a prompt, the common settings, a
 * progress bar fed by /sdapi/v1/progress, the images with their infotext.
 * Plain HTML and JavaScript served from the binary (no build step, nothing
 * fetched from elsewhere); it speaks to the same A1111 API as any client.
 * Text from the server is put into the page as text, never as HTML. A link
 * can fill the form and run it: /?prompt=...&steps=20&w=512&h=512&run=1. */
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static const char PAGE[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>sdc</title>\n"
    "<style>\n"
    "body{font:15px system-ui,sans-serif;margin:0;background:#f4f4f2;color:#222}\n"
    "header{background:#2b2d42;color:#fff;padding:10px 18px;font-weight:600}\n"
    "header span{font-weight:400;opacity:.75;margin-left:10px}\n"
    "main{display:flex;gap:18px;padding:18px;flex-wrap:wrap}\n"
    "form{flex:0 0 340px;display:flex;flex-direction:column;gap:8px}\n"
    "label{font-size:13px;color:#555}\n"
    "textarea,input,select{font:inherit;padding:6px;border:1px solid #bbb;border-radius:4px;width:100%;"
    "box-sizing:border-box}\n"
    ".row{display:flex;gap:8px}.row>div{flex:1}\n"
    "button{font:inherit;padding:8px;border:0;border-radius:4px;background:#ef233c;color:#fff;cursor:pointer}\n"
    "button.alt{background:#8d99ae}\n"
    "#bar{height:8px;background:#ddd;border-radius:4px;overflow:hidden}\n"
    "#fill{height:100%;width:0;background:#2b9348;transition:width .2s}\n"
    "#status{font-size:13px;color:#555;min-height:1.2em}\n"
    "#out{flex:1;min-width:300px;display:flex;flex-wrap:wrap;gap:14px;align-content:flex-start}\n"
    "figure{margin:0;background:#fff;padding:8px;border-radius:6px;box-shadow:0 1px 3px #0002;max-width:540px}\n"
    "figure img{display:block;max-width:100%;min-width:256px}\n"
    "figcaption{font:12px ui-monospace,monospace;white-space:pre-wrap;margin-top:6px;color:#444}\n"
    "</style></head><body>\n"
    "<header>sdc<span id=\"model\"></span></header>\n"
    "<main><form id=\"f\">\n"
    "<label for=\"prompt\">Prompt</label><textarea id=\"prompt\" rows=\"3\">a red circle</textarea>\n"
    "<label for=\"neg\">Negative prompt</label><textarea id=\"neg\" rows=\"2\"></textarea>\n"
    "<div class=\"row\"><div><label for=\"sampler\">Sampler</label><select id=\"sampler\"></select></div>\n"
    "<div><label for=\"steps\">Steps</label><input id=\"steps\" type=\"number\" min=\"1\" max=\"150\" "
    "value=\"20\"></div></div>\n"
    "<div class=\"row\"><div><label for=\"w\">Width</label><input id=\"w\" type=\"number\" step=\"8\" min=\"8\" "
    "value=\"512\"></div>\n"
    "<div><label for=\"h\">Height</label><input id=\"h\" type=\"number\" step=\"8\" min=\"8\" value=\"512\"></div>"
    "</div>\n"
    "<div class=\"row\"><div><label for=\"cfg\">CFG scale</label><input id=\"cfg\" type=\"number\" step=\"0.5\" "
    "value=\"7\"></div>\n"
    "<div><label for=\"seed\">Seed (-1: random)</label><input id=\"seed\" type=\"number\" value=\"-1\"></div>"
    "</div>\n"
    "<div class=\"row\"><div><label for=\"n\">Images</label><input id=\"n\" type=\"number\" min=\"1\" max=\"16\" "
    "value=\"1\"></div><div></div></div>\n"
    "<button id=\"go\" type=\"submit\">Generate</button>\n"
    "<button id=\"stop\" class=\"alt\" type=\"button\">Interrupt</button>\n"
    "<div id=\"bar\"><div id=\"fill\"></div></div><div id=\"status\"></div>\n"
    "</form><div id=\"out\"></div></main>\n"
    "<script>\n"
    "const $=id=>document.getElementById(id);\n"
    "async function api(path,body){const r=await fetch('/sdapi/v1/'+path,body===undefined?{}:\n"
    "  {method:'POST',headers:{'Content-Type':'application/json'},body:JSON.stringify(body)});\n"
    "  const j=await r.json();if(!r.ok){const d=j.detail;throw new Error(Array.isArray(d)?\n"
    "  d.map(e=>(e.loc||[]).slice(1).join('.')+': '+e.msg).join('; '):d);}return j;}\n"
    "async function init(){try{const s=await api('samplers');for(const x of s){const o=document.createElement("
    "'option');\n"
    "  o.textContent=x.name;if(x.name==='Euler a')o.selected=true;$('sampler').appendChild(o);}\n"
    "  const o=await api('options');$('model').textContent=o.sd_model_checkpoint;}catch(e){$('status')."
    "textContent=e.message;}}\n"
    "let timer=null;\n"
    "async function poll(){try{const p=await api('progress');$('fill').style.width=(100*p.progress).toFixed(1)+'%';\n"
    "  if(p.state.sampling_steps)$('status').textContent='step '+p.state.sampling_step+' of '+\n"
    "  p.state.sampling_steps+(p.eta_relative>0?', about '+p.eta_relative.toFixed(1)+' s left':'');}catch(e){}}\n"
    "$('f').addEventListener('submit',async ev=>{ev.preventDefault();$('go').disabled=true;\n"
    "  $('fill').style.width='0';$('status').textContent='waiting';timer=setInterval(poll,500);\n"
    "  const req={prompt:$('prompt').value,negative_prompt:$('neg').value,sampler_name:$('sampler').value,\n"
    "    steps:+$('steps').value,width:+$('w').value,height:+$('h').value,cfg_scale:+$('cfg').value,\n"
    "    seed:+$('seed').value,n_iter:+$('n').value};\n"
    "  try{const r=await api('txt2img',req);const info=JSON.parse(r.info);\n"
    "    r.images.map((b,i)=>[b,i]).reverse().forEach(([b,i])=>{const fig=document.createElement('figure'),img=document.createElement('img'),\n"
    "      cap=document.createElement('figcaption');img.src='data:image/png;base64,'+b;img.alt=req.prompt;\n"
    "      cap.textContent=info.infotexts[i]||'';fig.append(img,cap);$('out').prepend(fig);});\n"
    "    $('status').textContent='done: '+r.images.length+' image(s)';$('fill').style.width='100%';}\n"
    "  catch(e){$('status').textContent='error: '+e.message;}\n"
    "  finally{clearInterval(timer);$('go').disabled=false;}});\n"
    "$('stop').addEventListener('click',()=>api('interrupt',{}).catch(()=>{}));\n"
    "/* a link can fill the form (?prompt=...&steps=...&w=...) and run it (&run=1) */\n"
    "const q=new URLSearchParams(location.search);\n"
    "for(const k of ['prompt','neg','steps','w','h','cfg','seed','n'])if(q.has(k))$(k).value=q.get(k);\n"
    "init().then(()=>{if(q.has('sampler'))$('sampler').value=q.get('sampler');\n"
    "  if(q.get('run')==='1')$('f').requestSubmit();});\n"
    "</script></body></html>\n";

void web_page(srv_reply *out) {
    out->status = 200;
    out->len = sizeof PAGE - 1;
    out->body = malloc(out->len);
    out->type = "text/html; charset=utf-8";
    if (out->body) memcpy(out->body, PAGE, out->len);
    else srv_reply_detail(out, 500, "out of memory");
}
