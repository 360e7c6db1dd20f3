// Qianyun surveillance dashboard: vanilla JavaScript, charts drawn as SVG by hand, every request
// to the service that served the page. The page holds no data of its own: it signs in with the
// OAuth2 client-credentials grant, keeps the token in sessionStorage, and asks the API.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg'; // an XML namespace name, never fetched
  const TOKEN_KEY = 'qianyun.dashboard.token';
  const state = {
    token: null,
    diseases: [],
    divisions: null,
    names: new Map(), // division code → name
    query: null,
    threshold: 5,
    signals: [],
    selectedSignal: null,
    pending: 0,
  };

  // ---- small helpers ----------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgTitle(node, text) {
    node.append(svg('title', {}, text));
    return node;
  }

  const integer = new Intl.NumberFormat('zh-CN', { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat('zh-CN', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  // Rates per 100,000: two decimals, except where the decimals would only widen the column.
  const rateText = (rate) => (rate >= 1000 ? integer.format(rate) : decimal.format(rate));

  function isoDate(date) {
    return date.toISOString().slice(0, 10);
  }

  function parseDate(text) {
    const [y, m, d] = text.split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d));
  }

  function addDays(date, days) {
    return new Date(date.getTime() + days * 86400000);
  }

  // ISO 8601 week of a UTC date: "2026-W05".
  function isoWeek(date) {
    const day = (date.getUTCDay() + 6) % 7; // Monday 0
    const thursday = addDays(date, 3 - day);
    const year = thursday.getUTCFullYear();
    const firstThursday = new Date(Date.UTC(year, 0, 4));
    const week = 1 + Math.round((thursday - addDays(firstThursday, 3 - ((firstThursday.getUTCDay() + 6) % 7))) / (7 * 86400000));
    return `${year}-W${String(week).padStart(2, '0')}`;
  }

  // Monday of an ISO week, for axis labels.
  function weekMonday(date) {
    return addDays(date, -((date.getUTCDay() + 6) % 7));
  }

  function periods(from, to, grain) {
    const out = [];
    const end = parseDate(to);
    let day = parseDate(from);
    if (grain === 'week') {
      const seen = new Set();
      for (; day <= end; day = addDays(day, 1)) {
        const key = isoWeek(day);
        if (!seen.has(key)) {
          seen.add(key);
          const monday = weekMonday(day);
          out.push({ key, label: key.slice(5), sub: `${monday.getUTCMonth() + 1}/${monday.getUTCDate()}` });
        }
      }
    } else {
      for (; day <= end; day = addDays(day, 1)) {
        const key = isoDate(day);
        out.push({ key, label: `${day.getUTCMonth() + 1}/${day.getUTCDate()}`, sub: '' });
      }
    }
    return out;
  }

  // ---- state in the URL fragment (never sent to the server) --------------------------------

  function readFragment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const token = params.get('token');
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      params.delete('token');
      // The token leaves the address bar and the history at once.
      history.replaceState(null, '', location.pathname + location.search + (params.toString() ? '#' + params.toString() : ''));
    }
    return params;
  }

  function writeFragment(query) {
    const params = new URLSearchParams({
      disease: query.disease, division: query.division, from: query.from, to: query.to,
      basis: query.basis, grain: query.grain,
    });
    history.replaceState(null, '', location.pathname + location.search + '#' + params.toString());
  }

  // ---- the API ------------------------------------------------------------------------------

  class APIError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function api(path, options) {
    const headers = Object.assign({ Accept: 'application/json' }, (options && options.headers) || {});
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    let response;
    try {
      response = await fetch(path, { method: 'GET', cache: 'no-store', credentials: 'omit', ...options, headers });
    } catch (error) {
      throw new APIError(0, { title: '网络错误', detail: '无法连接到黔云服务，请检查网络后重试。' });
    }
    if (!response.ok) {
      let problem = null;
      try { problem = await response.json(); } catch (ignored) { /* not problem+json */ }
      const error = new APIError(response.status, problem);
      if (response.status === 401) signedOut('登录已失效或令牌无效，请重新登录。');
      throw error;
    }
    return response;
  }

  async function getJSON(path) {
    return (await api(path)).json();
  }

  function describe(error) {
    if (!(error instanceof APIError)) return '页面出错：' + (error && error.message ? error.message : String(error));
    switch (error.status) {
      case 0: return '无法连接到黔云服务，请检查网络后重试。';
      case 401: return '登录已失效，请重新登录。';
      case 403: return '无权访问：当前账号没有查看传染病监测数据的权限（需要 analyst 角色及 surveillance.read 权限）。';
      case 404: return '未找到所请求的数据（监测接口不可用或信号不存在）。';
      case 422: case 400: return '查询条件有误：' + (error.problem.detail || error.problem.title || '');
      case 429: return '请求过于频繁，请稍后再试。';
      default: return `服务暂时不可用（${error.status}）` + (error.problem.title ? '：' + error.problem.title : '') + '。';
    }
  }

  function showBanner(message, kind) {
    const banner = $('banner');
    banner.textContent = message;
    banner.className = 'banner ' + (kind || 'error');
    banner.hidden = false;
  }

  function clearBanner() {
    $('banner').hidden = true;
  }

  // Several loads run at once; the page says "ready" (for people and the browser test) when the
  // last one has settled, and "error" when any failed.
  let failures = 0;
  function begin() {
    state.pending += 1;
    document.body.dataset.state = 'loading';
  }
  function end(failed) {
    if (failed) failures += 1;
    state.pending -= 1;
    if (state.pending === 0 && state.token) document.body.dataset.state = failures ? 'error' : 'ready';
  }
  async function track(promise) {
    begin();
    let failed = true;
    try {
      const value = await promise;
      failed = false;
      return value;
    } finally {
      end(failed);
    }
  }

  // ---- sign-in ------------------------------------------------------------------------------

  function signedOut(message) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('workspace').hidden = true;
    $('fatal').hidden = true;
    $('session').hidden = true;
    $('signin').hidden = false;
    const error = $('signin-error');
    error.textContent = message || '';
    error.hidden = !message;
    document.body.dataset.state = 'signin';
  }

  async function signIn(event) {
    event.preventDefault();
    const error = $('signin-error');
    error.hidden = true;
    const body = new URLSearchParams({
      grant_type: 'client_credentials', client_id: $('client-id').value.trim(), client_secret: $('client-secret').value,
    });
    try {
      const response = await fetch('/oauth/token', {
        method: 'POST', body, credentials: 'omit', cache: 'no-store',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      });
      const json = await response.json().catch(() => ({}));
      if (!response.ok || !json.access_token) {
        error.textContent = response.status === 429 ? '失败次数过多，账号已暂时锁定，请稍后再试。' : '客户端编号或密钥不正确。';
        error.hidden = false;
        return;
      }
      $('client-secret').value = '';
      sessionStorage.setItem(TOKEN_KEY, json.access_token);
      start(new URLSearchParams(location.hash.replace(/^#/, '')));
    } catch (ignored) {
      error.textContent = '无法连接到黔云服务，请检查网络后重试。';
      error.hidden = false;
    }
  }

  // Who is signed in, from the token's own claims (display only: the server checks the token).
  function sessionLabel(token) {
    try {
      const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(payload), (c) => c.charCodeAt(0))));
      const expires = claims.exp ? new Date(claims.exp * 1000) : null;
      const until = expires ? `，有效至 ${String(expires.getHours()).padStart(2, '0')}:${String(expires.getMinutes()).padStart(2, '0')}` : '';
      return `已登录：${claims.sub}（${claims.role}${until}）`;
    } catch (ignored) {
      return '已登录';
    }
  }

  // ---- selectors ----------------------------------------------------------------------------

  function fillSelectors(params) {
    const diseaseSelect = $('f-disease');
    diseaseSelect.replaceChildren();
    const classes = { A: '甲类', B: '乙类', C: '丙类' };
    for (const cls of ['A', 'B', 'C']) {
      const group = el('optgroup', { label: classes[cls] + '传染病' });
      for (const d of state.diseases.filter((x) => x.class === cls)) {
        group.append(el('option', { value: d.code, text: d.nameZh }));
      }
      if (group.children.length) diseaseSelect.append(group);
    }
    const divisionSelect = $('f-division');
    divisionSelect.replaceChildren();
    const province = state.divisions.province;
    divisionSelect.append(el('option', { value: province.code, text: province.name + '（全省）' }));
    for (const prefecture of state.divisions.prefectures) {
      const group = el('optgroup', { label: prefecture.name });
      group.append(el('option', { value: prefecture.code, text: prefecture.name + '（全市/州）' }));
      for (const county of prefecture.counties) {
        group.append(el('option', { value: county.code, text: county.name }));
      }
      divisionSelect.append(group);
    }

    const today = new Date();
    const defaultTo = isoDate(new Date(Date.UTC(today.getFullYear(), today.getMonth(), today.getDate())));
    const defaultFrom = isoDate(addDays(parseDate(defaultTo), -83));
    const wanted = params.get('disease');
    const preferred = state.diseases.find((d) => d.code === wanted) || state.diseases.find((d) => d.code === 'influenza') || state.diseases[0];
    if (preferred) diseaseSelect.value = preferred.code;
    const division = params.get('division');
    divisionSelect.value = division && state.names.has(division) ? division : province.code;
    $('f-from').value = /^\d{4}-\d{2}-\d{2}$/.test(params.get('from') || '') ? params.get('from') : defaultFrom;
    $('f-to').value = /^\d{4}-\d{2}-\d{2}$/.test(params.get('to') || '') ? params.get('to') : defaultTo;
    setRadio('basis', params.get('basis') === 'report' ? 'report' : 'onset');
    setRadio('grain', params.get('grain') === 'day' ? 'day' : 'week');
  }

  function setRadio(name, value) {
    for (const input of document.querySelectorAll(`input[name="${name}"]`)) input.checked = input.value === value;
  }

  function radio(name) {
    const checked = document.querySelector(`input[name="${name}"]:checked`);
    return checked ? checked.value : null;
  }

  function currentQuery() {
    return {
      disease: $('f-disease').value, division: $('f-division').value, from: $('f-from').value, to: $('f-to').value,
      basis: radio('basis'), grain: radio('grain'),
    };
  }

  function countsURL(query, groupBy, divisionLevel) {
    const params = new URLSearchParams({
      disease: query.disease, division: query.division, from: query.from, to: query.to, dateBasis: query.basis, groupBy,
    });
    if (divisionLevel) params.set('divisionLevel', divisionLevel);
    return '/api/v1/surveillance/counts?' + params.toString();
  }

  function diseaseName(code) {
    const d = state.diseases.find((x) => x.code === code);
    return d ? d.nameZh : code;
  }

  function divisionLabel(code) {
    return state.names.get(code) || code;
  }

  function basisLabel(basis) {
    return basis === 'report' ? '报告日期' : '发病日期';
  }

  // The counties of the chosen area, grouped by prefecture, in the order of the division table.
  function countiesOf(code) {
    const groups = [];
    for (const prefecture of state.divisions.prefectures) {
      const inArea = code.length <= 2 || prefecture.code === code.slice(0, 4);
      if (!inArea) continue;
      const counties = prefecture.counties.filter((c) => code.length < 6 || c.code === code);
      if (counties.length) groups.push({ prefecture, counties });
    }
    return groups;
  }

  // ---- loading a view -----------------------------------------------------------------------

  async function refresh() {
    const query = currentQuery();
    if (!query.from || !query.to || query.from > query.to) {
      showBanner('请选择有效的日期范围（起始日期不能晚于截止日期）。', 'warn');
      return;
    }
    clearBanner();
    failures = 0;
    state.query = query;
    writeFragment(query);
    const title = `${diseaseName(query.disease)} · ${divisionLabel(query.division)}`;
    const range = `${query.from} 至 ${query.to}（${basisLabel(query.basis)}）`;
    $('curve-title').textContent = `流行曲线 — ${title}`;
    $('curve-sub').textContent = `${range}，${query.grain === 'week' ? '按 ISO 周' : '按日'}汇总`;
    $('table-title').textContent = `县区病例数与发病率 — ${title}`;
    $('table-sub').textContent = `${range}；按市（州）分组，发病率为每 10 万登记户籍人口`;
    document.title = `${title} · 传染病监测分析 · 黔云`;
    const loads = [loadCurve(query), loadTable(query), loadSignals()];
    const results = await Promise.allSettled(loads.map(track));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed && state.token) showBanner(describe(failed.reason), failed.reason.status === 403 ? 'warn' : 'error');
  }

  async function loadCurve(query) {
    const box = $('curve');
    box.replaceChildren(el('p', { class: 'loading', text: '正在加载流行曲线…' }));
    try {
      const data = await getJSON(countsURL(query, query.grain));
      state.threshold = data.threshold;
      renderCurve(box, data, query);
      const total = data.total || {};
      $('k-total').textContent = total.suppressed ? `<${data.threshold}` : integer.format(total.count || 0);
      $('k-total-note').textContent = `${query.from} 至 ${query.to}`;
      $('k-threshold').textContent = `阈值：少于 ${data.threshold} 例不显示`;
    } catch (error) {
      box.replaceChildren(el('p', { class: 'failed', text: '流行曲线加载失败：' + describe(error) }));
      throw error;
    }
  }

  async function loadTable(query) {
    const grid = $('county-grid');
    grid.dataset.state = 'loading';
    grid.replaceChildren(el('p', { class: 'loading', text: '正在加载县区数据…' }));
    try {
      const [counties, prefectures] = await Promise.all([
        getJSON(countsURL(query, 'division', 'county')),
        query.division.length < 6 ? getJSON(countsURL(query, 'division', 'prefecture')) : Promise.resolve(null),
      ]);
      renderTable(grid, counties, prefectures, query);
    } catch (error) {
      grid.dataset.state = 'error';
      grid.replaceChildren(el('p', { class: 'failed', text: '县区数据加载失败：' + describe(error) }));
      throw error;
    }
  }

  async function loadSignals() {
    const body = $('signal-body');
    body.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'loading', text: '正在加载预警信号…' })));
    try {
      const data = await getJSON('/api/v1/surveillance/signals?status=new,investigating');
      state.signals = data.signals || [];
      renderSignals(body);
    } catch (error) {
      $('k-signals').textContent = '—';
      body.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'failed', text: '预警信号加载失败：' + describe(error) })));
      throw error;
    }
  }

  // ---- the epidemic curve -------------------------------------------------------------------

  function renderCurve(box, data, query) {
    const key = query.grain;
    const byPeriod = new Map((data.cells || []).map((c) => [c[key], c]));
    const bars = periods(query.from, query.to, key).map((p) => {
      const cell = byPeriod.get(p.key);
      return { ...p, count: cell && !cell.suppressed ? cell.count : 0, suppressed: Boolean(cell && cell.suppressed) };
    });
    box.dataset.state = 'ready';
    if (!bars.some((b) => b.count > 0 || b.suppressed)) {
      box.replaceChildren(el('p', { class: 'empty', text: '所选条件下没有病例。' }));
      return;
    }
    box.replaceChildren(barChart(bars, {
      width: 1260, height: 270, threshold: data.threshold, unit: key === 'week' ? '周' : '日',
      describe: (b) => (key === 'week' ? `${b.key}（${b.sub} 起）` : b.key),
    }));
  }

  // A bar chart: bars of counts, suppressed bars hatched up to the threshold and labelled,
  // alarm days marked. `bars`: [{label, sub, count, suppressed, alarm}].
  function barChart(bars, options) {
    const { width, height, threshold } = options;
    const margin = { top: 22, right: 16, bottom: options.compact ? 34 : 46, left: 48 };
    const plotW = width - margin.left - margin.right;
    const plotH = height - margin.top - margin.bottom;
    const maxCount = Math.max(threshold, ...bars.map((b) => (b.suppressed ? threshold : b.count)));
    const step = niceStep(maxCount);
    const top = Math.ceil(maxCount / step) * step;
    const y = (v) => margin.top + plotH - (v / top) * plotH;
    const slot = plotW / bars.length;
    const barW = Math.max(1, Math.min(56, slot * 0.78));
    const root = svg('svg', {
      viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': options.label || '柱状图',
      preserveAspectRatio: 'xMidYMid meet',
    });
    const defs = svg('defs');
    const pattern = svg('pattern', { id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
    pattern.append(svg('rect', { width: 6, height: 6, fill: '#eef0f3' }), svg('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#b3bcc6', 'stroke-width': 3 }));
    defs.append(pattern);
    root.append(defs);

    for (let v = 0; v <= top; v += step) {
      root.append(svg('line', { class: v === 0 ? 'axis' : 'grid', x1: margin.left, x2: width - margin.right, y1: y(v), y2: y(v) }));
      root.append(svg('text', { class: 'tick', x: margin.left - 8, y: y(v) + 4, 'text-anchor': 'end' }, integer.format(v)));
    }
    root.append(svg('text', { class: 'axis-title', x: 12, y: margin.top - 8 }, '病例数'));

    const labelEvery = Math.max(1, Math.ceil(bars.length / Math.floor(plotW / (options.compact ? 44 : 52))));
    bars.forEach((bar, i) => {
      const cx = margin.left + slot * i + slot / 2;
      const x = cx - barW / 2;
      if (bar.suppressed) {
        const rect = svg('rect', { class: 'bar suppressed', x, y: y(threshold), width: barW, height: y(0) - y(threshold), 'data-suppressed': 'true' });
        root.append(svgTitle(rect, `${options.describe(bar)}：已抑制（少于 ${threshold} 例）`));
        if (barW >= 30) root.append(svg('text', { class: 'suppressed-label', x: cx, y: y(threshold) - 5 }, '已抑制'));
        else root.append(svg('text', { class: 'suppressed-label', x: cx, y: y(threshold) - 5 }, '抑'));
      } else if (bar.count > 0) {
        const rect = svg('rect', {
          class: 'bar' + (bar.alarm ? ' alarm' : ''), x, y: y(bar.count), width: barW, height: y(0) - y(bar.count), 'data-count': bar.count,
        });
        root.append(svgTitle(rect, `${options.describe(bar)}：${bar.count} 例${bar.alarm ? '（预警）' : ''}`));
        if (barW >= 18) root.append(svg('text', { class: 'bar-label', x: cx, y: y(bar.count) - 4 }, integer.format(bar.count)));
      }
      if (bar.alarm) {
        const base = y(0) + 4;
        root.append(svgTitle(svg('path', { class: 'alarm-mark', d: `M${cx} ${base} l5 8 h-10 z` }), `${options.describe(bar)}：预警日`));
      }
      if (i % labelEvery === 0) {
        const ly = y(0) + (bar.alarm ? 24 : 16);
        root.append(svg('text', { class: 'tick', x: cx, y: ly, 'text-anchor': 'middle' }, bar.label));
        if (bar.sub && !options.compact) root.append(svg('text', { class: 'tick', x: cx, y: ly + 14, 'text-anchor': 'middle' }, bar.sub));
      }
    });
    return root;
  }

  function niceStep(max) {
    const rough = max / 5;
    const power = Math.pow(10, Math.floor(Math.log10(Math.max(rough, 1))));
    for (const m of [1, 2, 5, 10]) if (m * power >= rough) return Math.max(1, m * power);
    return 10 * power;
  }

  // ---- the county table: one block per prefecture, in the order of the division table -------

  function renderTable(grid, counties, prefectures, query) {
    const threshold = counties.threshold;
    state.threshold = threshold;
    const cells = new Map((counties.cells || []).map((c) => [c.division, c]));
    const prefectureCells = new Map(((prefectures && prefectures.cells) || []).map((c) => [c.division, c]));
    const groups = countiesOf(query.division);
    const rates = [...cells.values()].filter((c) => !c.suppressed && typeof c.rate === 'number' && c.rate > 0).map((c) => c.rate);
    const shade = quintiles(rates);
    let withCases = 0;
    let suppressed = 0;
    const blocks = groups.map(({ prefecture, counties: list }) => {
      const head = el('tr', {}, ...['县（市、区）', '代码', '病例数', '户籍人口', '发病率'].map((t, i) =>
        el('th', { scope: 'col', class: i >= 2 ? 'num' : null, text: t })));
      const rows = list.map((county) => {
        const cell = cells.get(county.code);
        if (cell && cell.suppressed) suppressed += 1;
        if (cell) withCases += 1;
        const population = cell && typeof cell.population === 'number' ? cell.population : county.population;
        return el('tr', { class: 'county', 'data-division': county.code },
          el('td', { class: 'name', 'data-division': county.code, text: (cell && cell.divisionName) || county.name }),
          el('td', { class: 'code', 'data-division': county.code, text: county.code }),
          countCell(cell, threshold, county.code),
          el('td', { class: 'num population', 'data-division': county.code, 'data-population': population, text: integer.format(population || 0) }),
          rateCell(cell, population, county.code, shade));
      });
      const table = el('table', { class: 'data' }, el('thead', {}, head), el('tbody', {}, ...rows));
      const header = el('div', { class: 'block-head', 'data-prefecture': prefecture.code },
        el('h3', { text: prefecture.name }, el('span', { class: 'code', text: ' ' + prefecture.code })));
      if (prefectures) {
        const p = prefectureCells.get(prefecture.code);
        const total = p && p.suppressed ? `<${threshold}` : integer.format(p ? p.count : 0);
        const rate = p && !p.suppressed && typeof p.rate === 'number' ? `，${rateText(p.rate)}/10万` : '';
        header.append(el('span', {
          class: 'block-total' + (p && p.suppressed ? ' suppressed' : ''), 'data-prefecture': prefecture.code,
          'data-count': p && !p.suppressed ? p.count : p ? null : 0, 'data-suppressed': p && p.suppressed ? 'true' : null,
          text: `合计 ${total} 例${rate}`,
        }));
      }
      return el('section', { class: 'block' }, header, table);
    });
    grid.replaceChildren(...blocks);
    if (!blocks.length) grid.append(el('p', { class: 'empty', text: '所选地区没有县区。' }));
    grid.classList.toggle('single', blocks.length === 1);
    grid.dataset.state = 'ready';
    $('k-counties').textContent = integer.format(withCases);
    $('k-counties-note').textContent = `共 ${groups.reduce((n, g) => n + g.counties.length, 0)} 个县区`;
    $('k-suppressed').textContent = integer.format(suppressed);
    $('suppressed-sample').textContent = `<${threshold}`;
  }

  // Five classes of rate by quintile of the counties shown, for the cells' shading.
  function quintiles(values) {
    const sorted = [...values].sort((a, b) => a - b);
    const cuts = [0.2, 0.4, 0.6, 0.8].map((q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
    return (rate) => 1 + cuts.filter((cut) => rate > cut).length;
  }

  function countCell(cell, threshold, code) {
    if (cell && cell.suppressed) {
      return el('td', {
        class: 'num count suppressed', 'data-division': code, 'data-suppressed': 'true',
        title: `小于阈值已抑制：病例数在 1 至 ${threshold - 1} 之间，为保护隐私不显示具体数字`, text: `<${threshold}`,
      });
    }
    const count = cell ? cell.count : 0;
    return el('td', { class: 'num count' + (count ? '' : ' zero'), 'data-division': code, 'data-count': count, text: integer.format(count) });
  }

  function rateCell(cell, population, code, shade) {
    if (cell && cell.suppressed) return el('td', { class: 'num rate suppressed', 'data-division': code, title: '病例数已抑制，不计算发病率', text: '—' });
    if (cell && typeof cell.rate === 'number') {
      return el('td', { class: `num rate rate-q${cell.rate > 0 ? shade(cell.rate) : 0}`, 'data-division': code, text: rateText(cell.rate) });
    }
    const text = !cell && population > 0 ? decimal.format(0) : '—';
    return el('td', { class: 'num rate', 'data-division': code, title: population > 0 ? null : '无登记户籍人口', text });
  }

  // ---- signals ------------------------------------------------------------------------------

  const methodNames = {
    C1: 'EARS C1', C2: 'EARS C2', C3: 'EARS C3', CUSUM: 'CUSUM 累积和', CIDARS: 'CIDARS 移动百分位数', FIXED: '固定阈值',
  };
  const statusNames = { new: '新发', investigating: '调查中', confirmed: '已确认', dismissed: '已排除' };

  function renderSignals(body) {
    $('k-signals').textContent = integer.format(state.signals.length);
    if (!state.signals.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'empty', text: '当前没有未结的预警信号。' })));
      return;
    }
    const sorted = [...state.signals].sort((a, b) => (b.lastAlarmOn || '').localeCompare(a.lastAlarmOn || ''));
    body.replaceChildren(...sorted.map((s) => {
      const row = el('tr', { 'data-signal': s.id, tabindex: 0, title: '查看信号序列' },
        el('td', { text: s.diseaseName || diseaseName(s.disease) }),
        el('td', { text: `${s.divisionName || divisionLabel(s.division)}` }, el('span', { class: 'code', text: ' ' + s.division })),
        el('td', { text: methodNames[s.method] || s.method }),
        el('td', { text: s.firstAlarmOn }),
        el('td', { text: s.lastAlarmOn + (s.alarmDays > 1 ? `（${s.alarmDays} 天）` : '') }),
        el('td', { class: 'num', text: s.observed === null || s.observed === undefined ? '—' : integer.format(s.observed) }),
        el('td', { class: 'num', text: typeof s.upperbound === 'number' ? decimal.format(s.upperbound) : '—' }),
        el('td', {}, el('span', { class: 'status status-' + s.status, text: statusNames[s.status] || s.status })));
      row.addEventListener('click', () => openSignal(s.id));
      row.addEventListener('keydown', (e) => { if (e.key === 'Enter') openSignal(s.id); });
      return row;
    }));
  }

  async function openSignal(id) {
    state.selectedSignal = id;
    for (const row of document.querySelectorAll('#signal-body tr')) row.classList.toggle('selected', row.dataset.signal === id);
    const detail = $('signal-detail');
    detail.hidden = false;
    const chart = $('signal-chart');
    chart.replaceChildren(el('p', { class: 'loading', text: '正在加载信号序列…' }));
    $('signal-notes').replaceChildren();
    try {
      const signal = await track(getJSON('/api/v1/surveillance/signals/' + encodeURIComponent(id)));
      if (state.selectedSignal !== id) return;
      $('signal-detail-title').textContent =
        `${signal.diseaseName || diseaseName(signal.disease)} · ${signal.divisionName || divisionLabel(signal.division)}：` +
        `${methodNames[signal.method] || signal.method}，观察 ${signal.observed} 例，上限 ${typeof signal.upperbound === 'number' ? decimal.format(signal.upperbound) : '—'}`;
      const series = (signal.series || []).map((p) => ({
        key: p.date, label: `${Number(p.date.slice(5, 7))}/${Number(p.date.slice(8, 10))}`, sub: '',
        count: p.suppressed ? 0 : p.count || 0, suppressed: Boolean(p.suppressed), alarm: Boolean(p.alarm),
      }));
      chart.replaceChildren(series.length
        ? barChart(series, { width: 1260, height: 220, threshold: state.threshold, compact: true, label: '信号序列', describe: (b) => b.key })
        : el('p', { class: 'empty', text: '该信号没有序列数据。' }));
      $('signal-notes').replaceChildren(...(signal.notes || []).map((n) =>
        el('li', { text: `${(n.writtenAt || '').slice(0, 16).replace('T', ' ')} ${statusNames[n.fromStatus] || n.fromStatus} → ${statusNames[n.toStatus] || n.toStatus}：${n.note || ''}` })));
    } catch (error) {
      chart.replaceChildren(el('p', { class: 'failed', text: '信号加载失败：' + describe(error) }));
    }
  }

  // ---- CSV export through the API (which audits it) -----------------------------------------

  async function download(kind, button) {
    const query = state.query;
    if (!query) return;
    const url = kind === 'curve' ? countsURL(query, query.grain) : countsURL(query, 'division', 'county');
    button.disabled = true;
    try {
      const response = await api(url, { headers: { Accept: 'text/csv' } });
      const blob = await response.blob();
      const name = `qianyun-${query.disease}-${query.division}-${query.from}_${query.to}-${kind === 'curve' ? query.grain : 'county'}.csv`;
      const link = el('a', { href: URL.createObjectURL(blob), download: name, hidden: true });
      document.body.append(link);
      link.click();
      setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    } catch (error) {
      showBanner('导出失败：' + describe(error), error.status === 403 ? 'warn' : 'error');
    } finally {
      button.disabled = false;
    }
  }

  // ---- start --------------------------------------------------------------------------------

  async function start(params) {
    state.token = sessionStorage.getItem(TOKEN_KEY);
    if (!state.token) {
      signedOut();
      return;
    }
    $('signin').hidden = true;
    $('fatal').hidden = true;
    $('workspace').hidden = false;
    $('session').hidden = false;
    $('session-label').textContent = sessionLabel(state.token);
    failures = 0;
    // Held from here to the end, so the page never reads "ready" between the selectors and the views.
    begin();
    let failed = true;
    try {
      const [diseases, divisions] = await track(Promise.all([
        getJSON('/api/v1/surveillance/diseases'), getJSON('/api/v1/surveillance/divisions'),
      ]));
      state.diseases = diseases.diseases || [];
      state.divisions = divisions;
      state.names = new Map([[divisions.province.code, divisions.province.name]]);
      for (const p of divisions.prefectures) {
        state.names.set(p.code, p.name);
        for (const c of p.counties) state.names.set(c.code, c.name);
      }
      fillSelectors(params);
      await refresh();
      // A link may name a signal to open (`#signal=<id>`), as an alert e-mail would.
      const signal = params.get('signal');
      if (signal && state.token) await openSignal(signal);
      failed = false;
    } catch (error) {
      // Without the disease and division lists there is nothing to show: say why, offer a retry.
      if (state.token) {
        $('workspace').hidden = true;
        $('fatal-message').textContent = describe(error);
        $('fatal').hidden = false;
      }
    } finally {
      end(failed);
    }
  }

  // A violation of the page's Content-Security-Policy is recorded where the browser test reads it.
  document.addEventListener('securitypolicyviolation', (event) => {
    const list = (document.body.dataset.cspViolations || '').split(' ').filter(Boolean);
    list.push(event.blockedURI || event.violatedDirective);
    document.body.dataset.cspViolations = list.join(' ');
  });

  window.addEventListener('unhandledrejection', (event) => {
    showBanner('页面出错：' + (event.reason && event.reason.message ? event.reason.message : '未知错误'), 'error');
  });

  document.addEventListener('DOMContentLoaded', () => {
    $('boot').hidden = true;
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', () => signedOut('已退出登录。'));
    $('retry').addEventListener('click', () => start(new URLSearchParams(location.hash.replace(/^#/, ''))));
    $('filters').addEventListener('submit', (event) => { event.preventDefault(); refresh(); });
    for (const button of document.querySelectorAll('button.download')) {
      button.addEventListener('click', () => download(button.dataset.export, button));
    }
    start(readFragment());
  });
})();
