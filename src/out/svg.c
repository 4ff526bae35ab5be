/* svg.c — a self-contained interactive flame graph: the profile's stacks merged into a tree,
 * laid out root at the bottom with widths by samples, written as SVG rectangles with their
 * titles, plus a small inline script for zoom, search and details (no external resources).
 *
 * A writer of out/ (registry in output.c); reads only the finished profile (core/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps_output.h"
#include "ps_util.h"

#ifndef PS_VERSION
#define PS_VERSION "unknown"
#endif

#define SVG_W 1200
#define SVG_FRAME_H 16
#define SVG_PAD 10
#define SVG_TOP 48    /* title, subtitle and buttons */
#define SVG_BOTTOM 24 /* details line */
#define SVG_TITLE_CMD 72 /* bytes of the command shown in the title */

struct svg_node {
    uint32_t frame, parent, depth;
    uint64_t total, self, x;
    uint32_t first_child, next;
};

struct svg_tree {
    const struct ps_intern *in;
    struct ps_intern *keys; /* (frame, parent node, 0) -> node id */
    struct svg_node *n;     /* n[0] is the root of all stacks */
    uint32_t cap;
};

static uint32_t svg_child(struct svg_tree *t, uint32_t parent, uint32_t frame)
{
    uint32_t id = ps_intern_frame(t->keys, frame, parent, 0);
    if (id >= t->cap) {
        uint32_t nc = t->cap * 2;
        while (nc <= id)
            nc *= 2;
        t->n = ps_xrealloc(t->n, nc * sizeof *t->n);
        memset(t->n + t->cap, 0, (nc - t->cap) * sizeof *t->n);
        t->cap = nc;
    }
    struct svg_node *c = &t->n[id];
    if (!c->frame) {
        c->frame = frame;
        c->parent = parent;
        c->depth = t->n[parent].depth + 1;
    }
    return id;
}

static int svg_name_cmp(const void *a, const void *b, void *ctx)
{
    const struct svg_tree *t = ctx;
    const struct svg_node *x = &t->n[*(const uint32_t *)a], *y = &t->n[*(const uint32_t *)b];
    if (x->parent != y->parent)
        return x->parent < y->parent ? -1 : 1;
    const struct ps_frame_key *kx = ps_intern_frame_get(t->in, x->frame);
    const struct ps_frame_key *ky = ps_intern_frame_get(t->in, y->frame);
    int c = strcmp(ps_intern_str_get(t->in, kx->name) ? ps_intern_str_get(t->in, kx->name) : "",
                   ps_intern_str_get(t->in, ky->name) ? ps_intern_str_get(t->in, ky->name) : "");
    if (c)
        return c;
    return x->frame < y->frame ? -1 : x->frame > y->frame;
}

/* Stable colours: the hue range by kind, the shade by a hash of the name. */
static void svg_colour(struct ps_strbuf *sb, enum ps_kind kind, const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *s = name; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    unsigned v = h % 1000;
    switch (kind) {
    case PS_KIND_NATIVE: ps_sb_printf(sb, "rgb(%u,%u,%u)", 80 + v % 50, 140 + v % 60, 220); break;
    case PS_KIND_IDLE: ps_sb_printf(sb, "rgb(%u,%u,%u)", 180 + v % 30, 180 + v % 30, 185 + v % 30); break;
    case PS_KIND_ROOT: ps_sb_printf(sb, "rgb(%u,%u,%u)", 170 + v % 40, 140 + v % 30, 210); break;
    default: ps_sb_printf(sb, "rgb(%u,%u,%u)", 230 + v % 25, 110 + v % 110, 40 + v % 40); break;
    }
}

/* The label of a frame: `function (file:line)` as valid UTF-8, unescaped. */
static void svg_label(struct ps_strbuf *sb, const struct ps_intern *in, uint32_t frame)
{
    const struct ps_frame_key *k = ps_intern_frame_get(in, frame);
    const char *name = ps_intern_str_get(in, k->name);
    ps_sb_add(sb, name ? name : "", name ? ps_intern_str_len(in, k->name) : 0);
    const char *file = ps_intern_str_get(in, k->file);
    if (file) {
        ps_sb_adds(sb, " (");
        ps_sb_add(sb, file, ps_intern_str_len(in, k->file));
        if (k->line > 0)
            ps_sb_printf(sb, ":%d", (int)k->line);
        ps_sb_addc(sb, ')');
    }
}

static const char svg_style[] =
    "<style>\n"
    "text{font-family:Verdana,DejaVu Sans,sans-serif;font-size:12px;fill:#000}\n"
    "#title{font-size:17px} #sub{font-size:12px;fill:#444}\n"
    ".f rect{stroke:#fff;stroke-width:0.5;rx:2} .f:hover rect{stroke:#000;stroke-width:1;cursor:pointer}\n"
    ".f text{pointer-events:none} .hit rect{fill:rgb(230,0,230)!important} .dim{opacity:0.5}\n"
    ".btn{cursor:pointer;fill:#06c} .btn:hover{text-decoration:underline} .hide{display:none}\n"
    "</style>\n";

/* The script: frames carry data-x (first sample), data-w (samples) and data-d (depth); a
 * zoom shows [zx, zx+zw) across the full width. No network, no eval. */
static const char svg_script[] =
    "<script><![CDATA[\n"
    "'use strict';\n"
    "var svg=document.documentElement,W=+svg.getAttribute('data-width'),PAD=+svg.getAttribute('data-pad'),\n"
    "T=+svg.getAttribute('data-total'),FH=+svg.getAttribute('data-fh'),frames=[].slice.call(document.querySelectorAll('g.f')),\n"
    "details=document.getElementById('details'),matched=document.getElementById('matched'),\n"
    "zx=0,zw=T,zd=0,re=null;\n"
    "function info(g){var t=g.querySelector('title').textContent;return t;}\n"
    "function fit(g,w){var t=g.querySelector('text'),s=info(g).split('\\n')[0],n=Math.floor((w-6)/7);\n"
    " t.textContent=n<3?'':(s.length<=n?s:s.slice(0,n-2)+'..');}\n"
    "function layout(){var sc=(W-2*PAD)/zw;frames.forEach(function(g){\n"
    " var x=+g.getAttribute('data-x'),w=+g.getAttribute('data-w'),d=+g.getAttribute('data-d'),r=g.querySelector('rect');\n"
    " var vis=x<zx+zw&&x+w>zx;if(d<zd){vis=x<=zx&&x+w>=zx+zw;}\n"
    " if(!vis||w*sc<0.1){g.classList.add('hide');return;}g.classList.remove('hide');\n"
    " var a=Math.max(x,zx),b=Math.min(x+w,zx+zw),px=PAD+(a-zx)*sc,pw=(b-a)*sc;\n"
    " r.setAttribute('x',px.toFixed(2));r.setAttribute('width',pw.toFixed(2));\n"
    " g.querySelector('text').setAttribute('x',(px+3).toFixed(2));fit(g,pw);\n"
    " if(d<zd)g.classList.add('dim');else g.classList.remove('dim');});\n"
    " document.getElementById('reset').classList.toggle('hide',zw===T);}\n"
    "function zoom(g){zx=+g.getAttribute('data-x');zw=+g.getAttribute('data-w');zd=+g.getAttribute('data-d');layout();}\n"
    "function reset(){zx=0;zw=T;zd=0;layout();}\n"
    "function search(term){re=null;var iv=[];frames.forEach(function(g){g.classList.remove('hit');});\n"
    " if(term){try{re=new RegExp(term);}catch(e){matched.textContent='bad pattern';return;}}\n"
    " if(!re){matched.textContent='';document.getElementById('clear').classList.add('hide');return;}\n"
    " frames.forEach(function(g){if(re.test(info(g).split('\\n')[0])){g.classList.add('hit');\n"
    "  iv.push([+g.getAttribute('data-x'),+g.getAttribute('data-w')]);}});\n"
    " iv.sort(function(a,b){return a[0]-b[0]||b[1]-a[1];});var sum=0,end=-1;\n"
    " iv.forEach(function(v){var s=Math.max(v[0],end),e=v[0]+v[1];if(e>s){sum+=e-s;end=e;}});\n"
    " matched.textContent='Matched: '+(100*sum/T).toFixed(1)+'% ('+sum+' of '+T+' samples)';\n"
    " document.getElementById('clear').classList.remove('hide');}\n"
    "frames.forEach(function(g){g.addEventListener('click',function(){zoom(g);});\n"
    " g.addEventListener('mouseover',function(){details.textContent=info(g).replace('\\n',' \\u2014 ');});\n"
    " g.addEventListener('mouseout',function(){details.textContent=' ';});});\n"
    "document.getElementById('reset').addEventListener('click',reset);\n"
    "document.getElementById('search').addEventListener('click',function(){var t=prompt('Search frames (regular expression):',re?re.source:'');if(t!==null)search(t);});\n"
    "document.getElementById('clear').addEventListener('click',function(){search('');});\n"
    "window.pysample={zoom:zoom,reset:reset,search:search};\n"
    "layout();\n"
    "]]></script>\n";

int ps_svg_write(FILE *f, const struct ps_profile *p, const struct ps_out_opts *o)
{
    (void)o;
    const struct ps_intern *in = p->in;
    uint32_t nstacks = ps_intern_nstacks(in);
    struct svg_tree t = {.in = in, .keys = ps_intern_new(), .cap = 1024};
    t.n = ps_xcalloc(t.cap, sizeof *t.n);
    uint64_t total = 0;
    for (uint32_t sid = 1; sid <= nstacks && sid < p->counts_cap; sid++) {
        uint64_t c = p->counts[sid];
        if (!c)
            continue;
        uint32_t n;
        const uint32_t *fr = ps_intern_stack_get(in, sid, &n);
        uint32_t node = 0;
        for (uint32_t i = 0; i < n; i++) {
            node = svg_child(&t, node, fr[i]);
            t.n[node].total += c;
        }
        t.n[node].self += c;
        total += c;
    }
    t.n[0].total = total;
    uint32_t nnodes = ps_intern_nframes(t.keys);

    /* Children in name order, then x offsets: a parent's id is always below its children's. */
    uint32_t *order = ps_xmalloc(((size_t)nnodes + 1) * sizeof *order);
    for (uint32_t i = 0; i < nnodes; i++)
        order[i] = i + 1;
    qsort_r(order, nnodes, sizeof *order, svg_name_cmp, &t);
    for (uint32_t i = nnodes; i-- > 0;) {
        struct svg_node *c = &t.n[order[i]];
        c->next = t.n[c->parent].first_child;
        t.n[c->parent].first_child = order[i];
    }
    free(order);
    uint32_t maxdepth = 0;
    uint64_t min_w = total / PS_SVG_MIN_FRACTION;
    uint32_t shown = 0;
    for (uint32_t id = 0; id <= nnodes; id++) {
        uint64_t x = t.n[id].x;
        for (uint32_t c = t.n[id].first_child; c; c = t.n[c].next) {
            t.n[c].x = x;
            x += t.n[c].total;
        }
        if (id && t.n[id].total > min_w) {
            shown++;
            if (t.n[id].depth > maxdepth)
                maxdepth = t.n[id].depth;
        }
    }

    unsigned height = SVG_TOP + (maxdepth ? maxdepth : 1) * SVG_FRAME_H + SVG_BOTTOM;
    struct ps_strbuf sb, tmp;
    ps_sb_init(&sb);
    ps_sb_init(&tmp);
    ps_sb_printf(&sb,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                 "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                 "height=\"%u\" viewBox=\"0 0 %d %u\" data-width=\"%d\" data-pad=\"%d\" "
                 "data-fh=\"%d\" data-total=\"%llu\">\n",
                 SVG_W, height, SVG_W, height, SVG_W, SVG_PAD, SVG_FRAME_H,
                 (unsigned long long)total);
    ps_sb_adds(&sb, "<!-- pysample " PS_VERSION " flame graph -->\n");
    if (p->has_stats) {
        const struct ps_stats *st = &p->stats;
        ps_sb_printf(&sb, "<desc>pysample statistics: rate %g Hz requested, %.6f s, %llu ticks, "
                          "%llu late, %llu thread-samples, %llu dropped, %llu idle left out</desc>\n",
                     st->rate_hz, st->duration_s, (unsigned long long)st->ticks,
                     (unsigned long long)st->late_ticks, (unsigned long long)st->thread_samples,
                     (unsigned long long)ps_stats_dropped_total(st),
                     (unsigned long long)st->idle_skipped);
    }
    ps_sb_adds(&sb, svg_style);
    ps_sb_printf(&sb, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%u\" fill=\"#fafafa\"/>\n",
                 SVG_W, height);

    /* Title: command, pid, duration, samples. */
    const char *cmd = ps_meta_get(&p->meta, "command");
    const char *pid = ps_meta_get(&p->meta, "pid");
    double interval = p->interval_s > 0 ? p->interval_s : 0.01;
    double dur = p->has_stats && p->stats.duration_s > 0 ? p->stats.duration_s
                                                          : (double)total * interval;
    ps_sb_reset(&tmp);
    ps_sb_adds(&tmp, "pysample flame graph");
    if (cmd && *cmd) {
        /* The title fits between the buttons: a long command loses its middle (whole
         * UTF-8 characters only); the full one is in the title's tooltip. */
        ps_sb_adds(&tmp, ": ");
        size_t cl = strlen(cmd);
        if (cl <= SVG_TITLE_CMD) {
            ps_sb_add(&tmp, cmd, cl);
        } else {
            size_t head = SVG_TITLE_CMD / 3, tail = cl - (SVG_TITLE_CMD - head - 3);
            while (head > 0 && ((unsigned char)cmd[head] & 0xc0) == 0x80)
                head--;
            while (tail < cl && ((unsigned char)cmd[tail] & 0xc0) == 0x80)
                tail++;
            ps_sb_add(&tmp, cmd, head);
            ps_sb_adds(&tmp, "...");
            ps_sb_add(&tmp, cmd + tail, cl - tail);
        }
    }
    if (pid)
        ps_sb_printf(&tmp, " (pid %s)", pid);
    ps_sb_printf(&sb, "<text id=\"title\" x=\"%d\" y=\"22\" text-anchor=\"middle\"><title>",
                 SVG_W / 2);
    ps_sb_add_xml(&sb, cmd ? cmd : "", cmd ? strlen(cmd) : 0);
    ps_sb_adds(&sb, "</title>");
    ps_sb_add_xml(&sb, tmp.buf, tmp.len);
    ps_sb_adds(&sb, "</text>\n");
    ps_sb_printf(&sb, "<text id=\"sub\" x=\"%d\" y=\"38\" text-anchor=\"middle\">%.2f s, %llu "
                      "samples, %u frames shown",
                 SVG_W / 2, dur, (unsigned long long)total, shown);
    if (shown < nnodes)
        ps_sb_printf(&sb, " (%u under %.3f%% left out)", nnodes - shown,
                     100.0 / PS_SVG_MIN_FRACTION);
    ps_sb_adds(&sb, "</text>\n");
    ps_sb_printf(&sb,
                 "<text id=\"reset\" class=\"btn hide\" x=\"%d\" y=\"22\">Reset zoom</text>\n"
                 "<text id=\"search\" class=\"btn\" x=\"%d\" y=\"22\" text-anchor=\"end\">Search</text>\n"
                 "<text id=\"clear\" class=\"btn hide\" x=\"%d\" y=\"38\" text-anchor=\"end\">Clear</text>\n"
                 "<text id=\"matched\" x=\"%d\" y=\"%u\" text-anchor=\"end\"> </text>\n"
                 "<text id=\"details\" x=\"%d\" y=\"%u\"> </text>\n",
                 SVG_PAD, SVG_W - SVG_PAD, SVG_W - SVG_PAD, SVG_W - SVG_PAD, height - 8, SVG_PAD,
                 height - 8);

    /* Frames, in id order (parents before children). */
    double scale = total ? (double)(SVG_W - 2 * SVG_PAD) / (double)total : 0;
    ps_sb_adds(&sb, "<g id=\"frames\">\n");
    for (uint32_t id = 1; id <= nnodes; id++) {
        const struct svg_node *nd = &t.n[id];
        if (nd->total <= min_w)
            continue;
        const struct ps_frame_key *k = ps_intern_frame_get(in, nd->frame);
        enum ps_kind kind = ps_frame_kind(in, nd->frame);
        ps_sb_reset(&tmp);
        svg_label(&tmp, in, nd->frame);
        double px = SVG_PAD + (double)nd->x * scale, pw = (double)nd->total * scale;
        unsigned y = height - SVG_BOTTOM - nd->depth * SVG_FRAME_H;
        ps_sb_printf(&sb, "<g class=\"f %s\" data-x=\"%llu\" data-w=\"%llu\" data-d=\"%u\"><title>",
                     ps_kind_name(kind), (unsigned long long)nd->x,
                     (unsigned long long)nd->total, nd->depth - 1);
        ps_sb_add_xml(&sb, tmp.buf, tmp.len);
        ps_sb_printf(&sb, "\n%llu samples, %.2f%%", (unsigned long long)nd->total,
                     100.0 * (double)nd->total / (double)total);
        if (nd->self)
            ps_sb_printf(&sb, " (self %llu, %.2f%%)", (unsigned long long)nd->self,
                         100.0 * (double)nd->self / (double)total);
        ps_sb_printf(&sb, ", %s</title><rect x=\"%.2f\" y=\"%u\" width=\"%.2f\" height=\"%d\" fill=\"",
                     ps_kind_name(kind), px, y, pw, SVG_FRAME_H - 1);
        svg_colour(&sb, kind, ps_intern_str_get(in, k->name));
        ps_sb_printf(&sb, "\"/><text x=\"%.2f\" y=\"%u\"></text></g>\n", px + 3,
                     y + SVG_FRAME_H - 4);
        if (sb.len > (1u << 20)) {
            fwrite(sb.buf, 1, sb.len, f);
            ps_sb_reset(&sb);
        }
    }
    ps_sb_adds(&sb, "</g>\n");
    ps_sb_adds(&sb, svg_script);
    ps_sb_adds(&sb, "</svg>\n");
    fwrite(sb.buf, 1, sb.len, f);

    ps_sb_release(&sb);
    ps_sb_release(&tmp);
    free(t.n);
    ps_intern_free(t.keys);
    return ferror(f) ? PS_EIO : 0;
}
