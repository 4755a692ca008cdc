#!/usr/bin/env node
/*
 * Runs OHIF 3.13.2's own display-set code under Node over exported study metadata, and prints
 * what OHIF makes: the reference side of tests/test_ohif_reference.py.
 *
 *   node ohif_display_sets.js OHIF_DIST INPUT.json > OUTPUT.json
 *
 * OHIF_DIST is the dist/ folder of `npm pack @ohif/app@3.13.2` (the built viewer, unminified).
 * Nothing of OHIF is copied here: this script cuts OHIF's modules out of those bundles at run
 * time (webpack modules by id, concatenated modules by their "CONCATENATED MODULE" markers) and
 * evaluates them with stand-ins for the browser-only parts (cornerstone rendering, i18n, React).
 * The code that decides display sets runs unchanged: DisplaySetService, the stack handler,
 * isDisplaySetReconstructable, sortInstancesByPosition, sortStudy, ImageSet, cornerstone's
 * splitImageIdsBy4DTags, dcmjs's addAccessors, and the video, ECG, SEG, parametric map,
 * whole-slide, PDF, SR and RTSTRUCT handlers, in the basic viewer's order.
 */
'use strict';
const fs = require('fs');
const path = require('path');

const [distDir, inputPath] = process.argv.slice(2);
if (!distDir || !inputPath) {
  console.error('usage: node ohif_display_sets.js OHIF_DIST INPUT.json');
  process.exit(2);
}
const bundle = prefix => {
  const name = fs.readdirSync(distDir).find(f => f.startsWith(prefix + '.') && f.endsWith('.js'));
  if (!name) throw new Error(`no ${prefix}.*.js in ${distDir}`);
  return fs.readFileSync(path.join(distDir, name), 'utf8');
};
const APP = bundle('app');

/* ------------------------------------------------------------------ cutting code out */

function section(text, startMarker, endMarker) {
  const start = text.indexOf(';// CONCATENATED MODULE: ' + startMarker);
  if (start < 0) throw new Error('marker not found: ' + startMarker);
  const end = endMarker
    ? text.indexOf(';// CONCATENATED MODULE: ' + endMarker, start)
    : text.indexOf(';// CONCATENATED MODULE: ', start + 10);
  if (end < 0) throw new Error('end marker not found after: ' + startMarker);
  return text.slice(start, end);
}

function moduleBody(text, id) {
  const head = new RegExp('\\n' + id + '\\((__unused_rspack_module|__unused_rspack___webpack_module__)[^)]*\\) \\{\\n');
  const m = head.exec(text);
  if (!m) return null;
  const from = m.index + m[0].length;
  const tail = /\n\},\n\d+\(/g;
  tail.lastIndex = from;
  const e = tail.exec(text);
  return text.slice(from, e.index);
}

/** A stand-in that answers every property access and call with itself. */
const ANY = new Proxy(function () {}, {
  get: (t, p) => (p === Symbol.toPrimitive ? () => '' : p === 'then' ? undefined : ANY),
  apply: () => ANY,
  construct: () => ANY,
});
const over = obj => new Proxy(obj, { get: (t, p) => (p in t ? t[p] : ANY) });

// The OHIF core modules run as they are; every other module (React, cornerstone rendering,
// i18n, dcmjs's codecs...) is a stand-in.
const RUN = new Set([93208, 4044, 28395, 71914, 13191, 13533, 52975, 40230, 24457, 9175, 89080, 93159]);
const stubs = new Map();
const cache = new Map();
function webpackRequire(id) {
  if (stubs.has(id)) return stubs.get(id);
  if (!RUN.has(id)) return ANY;
  if (cache.has(id)) return cache.get(id).exports;
  const body = moduleBody(APP, id);
  if (body == null) return ANY;
  const module = { exports: {} };
  cache.set(id, module);
  new Function('__unused_rspack_module', '__webpack_exports__', '__webpack_require__', body)(
    module, module.exports, webpackRequire);
  return module.exports;
}
webpackRequire.d = (exports, defs) => {
  for (const k of Object.keys(defs)) Object.defineProperty(exports, k, { enumerable: true, get: defs[k] });
};
webpackRequire.n = m => () => (m && m.__esModule ? m.default : m);
webpackRequire.r = () => {};
webpackRequire.e = () => Promise.resolve();

/** Evaluate concatenated-module text; `scope` gives its free variables; returns `names`. */
function evaluate(text, scope, names) {
  const keys = Object.keys(scope);
  const fn = new Function('__webpack_require__', ...keys,
    text + '\nreturn {' + names.join(', ') + '};');
  return fn(webpackRequire, ...keys.map(k => scope[k]));
}

/* ------------------------------------------------------------------ OHIF core pieces */

const reconstructable = webpackRequire(93208); // isDisplaySetReconstructable.js
const sortStudy = webpackRequire(28395);
const sortInstancesByPosition = webpackRequire(4044);
const guidModule = webpackRequire(93159);
const ImageSetModule = webpackRequire(89080);
const { sopClassDictionary } = evaluate(section(APP, '../../core/src/utils/sopClassDictionary.js'), {}, ['sopClassDictionary']);
const { isImage } = evaluate(section(APP, '../../core/src/utils/isImage.js'), { sopClassDictionary }, ['isImage']);

// dcmjs's naturalizeDataset wraps one-item sequences with addAccessors (seq.X reads seq[0].X)
const DCMJS = bundle('2493');
const addAccessorsText = DCMJS.slice(DCMJS.indexOf('var handler = {\n  /**\n   * Get a proxied value'),
  DCMJS.indexOf('var DicomMetaDictionary = /*#__PURE__*/function'));
const { addAccessors } = evaluate(addAccessorsText,
  { _typeof: v => typeof v }, ['addAccessors']);

// cornerstone's splitImageIdsBy4DTags (dynamic volumes), over a metadata provider for our ids
const instancesByImageId = new Map();
function baseImageId(imageId) {
  return imageId.replace(/\/frames\/\d+$/, '/frames/1');
}
function metadataGet(type, imageId) {
  const instance = instancesByImageId.get(baseImageId(imageId));
  if (!instance) return undefined;
  if (type === 'instance') return instance;
  if (type === 'imagePlaneModule') {
    const ipp = instance.ImagePositionPatient;
    return { imagePositionPatient: toFiniteNumber(ipp) || [0, 0, 0] };
  }
  if (type === 'petImageModule') {
    return { frameReferenceTime: instance.FrameReferenceTime, actualFrameDuration: instance.ActualFrameDuration };
  }
  return instance[type] || undefined;
}
const { toFiniteNumber } = evaluate(
  APP.slice(APP.indexOf('function isNumberLike(value) {'), APP.indexOf('function toFiniteNumber(value) {')) +
  APP.slice(APP.indexOf('function toFiniteNumber(value) {')).split('\n}\n')[0] + '\n}\n', {}, ['toFiniteNumber']);
const { splitImageIdsBy4DTags } = evaluate(
  section(APP, '../../../node_modules/@cornerstonejs/metadata/dist/esm/utilities/splitImageIdsBy4DTags.js'),
  { get: metadataGet, esm: { IQ: toFiniteNumber } }, ['splitImageIdsBy4DTags']);
const getDynamicVolumeInfo = evaluate(moduleBody(APP, 98014).replace(/^[\s\S]*?(function getDynamicVolumeInfo)/, '$1')
  .replace(/\/\* export default \*\/[\s\S]*$/, ''),
  { _splitImageIdsBy4DTags_js__rspack_import_0: { Ay: splitImageIdsBy4DTags } }, ['getDynamicVolumeInfo']).getDynamicVolumeInfo;

/* ------------------------------------------------------------------ services */

class PubSubService {
  constructor(EVENTS) { this.EVENTS = EVENTS; this.listeners = {}; }
  subscribe(event, callback) {
    const list = (this.listeners[event] = this.listeners[event] || []);
    const entry = { callback };
    list.push(entry);
    return { unsubscribe: () => list.splice(list.indexOf(entry), 1) };
  }
  _broadcastEvent(event, data) {
    for (const { callback } of [...(this.listeners[event] || [])]) callback(data);
  }
}
const { DisplaySetService } = evaluate(
  section(APP, '../../core/src/services/DisplaySetService/EVENTS.js', '../../core/src/services/DisplaySetService/DisplaySetMessage.ts'),
  { pubSubServiceInterface: { R: PubSubService } }, ['DisplaySetService']);

const utils = {
  isImage, sopClassDictionary, guid: guidModule.A,
  sortStudyInstances: sortStudy.Gb, sortDisplaySetsCopy: sortStudy.LH,
  isDisplaySetReconstructable: reconstructable.Ay,
};
class DisplaySetMessageList { constructor() { this.messages = []; } addMessage(code) { this.messages.push(code); } }
const coreSrc = over({
  Wp: utils, Ly: over({ ImageSet: ImageSetModule.A, MetadataProvider: ANY }),
  WZ: DisplaySetMessageList, Ob: over({ CODES: ANY }), H8: ANY, Rm: ANY,
  Ay: over({ utils, classes: over({ ImageSet: ImageSetModule.A }) }),
});
const i18n = { A: over({ t: s => s }) };
const cornerstoneCore = over({
  metaData: over({ get: metadataGet }),
  Enums: over({ ViewportType: ANY, MetadataModules: ANY }),
  utilities: over({ genericMetadataProvider: over({ add: () => {}, addRaw: () => {} }) }),
});
stubs.set(50679, coreSrc);
stubs.set(90119, i18n);
stubs.set(88479, cornerstoneCore);

const dataSource = over({
  getImageIdsForDisplaySet: imageSet => imageSet.images.flatMap(instance => {
    const frames = Number(instance.NumberOfFrames) || 1;
    if (frames <= 1) return [instance.imageId];
    return Array.from({ length: frames }, (_, n) => instance.imageId.replace(/\/frames\/\d+$/, '/frames/' + (n + 1)));
  }),
  retrieve: over({ directURL: () => 'url', getGetThumbnailSrc: undefined, renderedURL: undefined, getWadoDicomWebClient: undefined }),
});

/* ------------------------------------------------------------------ the handlers */

const scopeOf = text => ({
  src: coreSrc, i18n_src: i18n, esm: cornerstoneCore, core_dist_esm: cornerstoneCore,
  dist_esm: cornerstoneCore, react: ANY, cornerstone_src: ANY, adapters_dist_esm: ANY,
  dcmjs_es: ANY, enums: ANY, gl_matrix_esm: ANY, default_src: ANY, core_src: over({ Ay: coreSrc.Ay }),
  ...(text.includes('sortInstancesByPosition') ? {} : {}),
});

function extension(text, fromMarker, toMarker, names, extra = {}) {
  const start = text.indexOf(';// CONCATENATED MODULE: ' + fromMarker);
  const end = text.indexOf(';// CONCATENATED MODULE: ' + toMarker, start);
  if (start < 0 || end < 0) throw new Error('extension markers not found: ' + fromMarker);
  return evaluate(text.slice(start, end), { ...scopeOf(text), ...extra }, names);
}

const B89 = bundle('89');
const defaultExt = extension(B89, '../../../extensions/default/src/getDisplaySetMessages.ts',
  '../../../extensions/default/src/Toolbar/ToolbarLayoutSelector.tsx', ['src_getSopClassHandlerModule'], {
    isDisplaySetReconstructable: reconstructable, sortInstancesByPosition,
    checkMultiFrame: () => {}, checkSingleFrames: () => {}, id_id: '@ohif/extension-default',
  });
const cornerstoneExt = extension(B89, '../../../extensions/cornerstone/src/utils/ecgMetadata.ts',
  '../../../extensions/cornerstone/src/components/SegmentationUtilityButton.tsx', ['getSopClassHandlerModule']);
const idSection = (text, pkg) => ({ id: JSON.parse(text.match(/package_namespaceObject = JSON.parse\('([^']*)'\)/)[1]).UU, pkg });
const ext = (prefix, from, to, names) => {
  const text = bundle(prefix);
  const { id } = idSection(text);
  return extension(text, from, to, names, { package_namespaceObject: { UU: id } });
};
const video = ext('100', '../../../extensions/dicom-video/src/id.js', '../../../extensions/dicom-video/src/index.tsx', ['getSopClassHandlerModule']);
const pdf = ext('9116', '../../../extensions/dicom-pdf/src/id.js', '../../../extensions/dicom-pdf/src/index.tsx', ['getSopClassHandlerModule']);
const seg = ext('781', '../../../extensions/cornerstone-dicom-seg/src/id.js', '../../../extensions/cornerstone-dicom-seg/src/getHangingProtocolModule.ts', ['getSopClassHandlerModule']);
const pmap = ext('9415', '../../../extensions/cornerstone-dicom-pmap/src/id.js', '../../../extensions/cornerstone-dicom-pmap/src/index.tsx', ['getSopClassHandlerModule']);
const rt = ext('3500', '../../../extensions/cornerstone-dicom-rt/src/id.js', '../../../extensions/cornerstone-dicom-rt/src/getCommandsModule.ts', ['getSopClassHandlerModule']);
const sr = ext('7248', '../../../extensions/cornerstone-dicom-sr/src/id.js', '../../../extensions/cornerstone-dicom-sr/src/getHangingProtocolModule.ts', ['getSopClassHandlerModule']);


/* ------------------------------------------------------------------ running a study */

// modes/basic/src/index.tsx: the basic viewer's (and @ohif/mode-longitudinal's) handler order
const HANDLER_IDS = [
  '@ohif/extension-dicom-video.sopClassHandlerModule.dicom-video',
  '@ohif/extension-cornerstone.sopClassHandlerModule.DicomEcgSopClassHandler',
  '@ohif/extension-cornerstone-dicom-seg.sopClassHandlerModule.dicom-seg',
  '@ohif/extension-cornerstone-dicom-pmap.sopClassHandlerModule.dicom-pmap',
  '@ohif/extension-default.sopClassHandlerModule.stack',
  '@ohif/extension-cornerstone.sopClassHandlerModule.DicomMicroscopySopClassHandler',
  '@ohif/extension-dicom-pdf.sopClassHandlerModule.dicom-pdf',
  '@ohif/extension-cornerstone-dicom-sr.sopClassHandlerModule.dicom-sr-3d',
  '@ohif/extension-cornerstone-dicom-sr.sopClassHandlerModule.dicom-sr',
  '@ohif/extension-cornerstone-dicom-rt.sopClassHandlerModule.dicom-rt',
];

function makeServices() {
  const displaySetService = new DisplaySetService();
  const customizationService = over({
    getCustomization: name => (name === 'instanceSortingCriteria'
      ? { sortFunctions: {}, defaultSortFunctionName: '' } : undefined),
  });
  const servicesManager = { services: over({ displaySetService, customizationService, userAuthenticationService: ANY }) };
  const entries = new Map();
  const extensionManager = over({
    getActiveDataSource: () => [dataSource],
    getDataSources: () => [dataSource],
    getModuleEntry: id => entries.get(id) || (id === '@ohif/extension-cornerstone.utilityModule.volumeLoader'
      ? { exports: { getDynamicVolumeInfo } } : undefined),
  });
  const params = { servicesManager, extensionManager, commandsManager: ANY, appConfig: undefined };
  const modules = [
    ['@ohif/extension-default', defaultExt.src_getSopClassHandlerModule],
    ['@ohif/extension-cornerstone', cornerstoneExt.getSopClassHandlerModule],
    ['@ohif/extension-dicom-video', video.getSopClassHandlerModule],
    ['@ohif/extension-dicom-pdf', pdf.getSopClassHandlerModule],
    ['@ohif/extension-cornerstone-dicom-seg', seg.getSopClassHandlerModule],
    ['@ohif/extension-cornerstone-dicom-pmap', pmap.getSopClassHandlerModule],
    ['@ohif/extension-cornerstone-dicom-rt', rt.getSopClassHandlerModule],
    ['@ohif/extension-cornerstone-dicom-sr', sr.getSopClassHandlerModule],
  ];
  for (const [extId, getModule] of modules) {
    for (const handler of getModule(params)) {
      entries.set(`${extId}.sopClassHandlerModule.${handler.name}`, handler);
    }
  }
  displaySetService.init(extensionManager, HANDLER_IDS);
  return displaySetService;
}

/** dcmjs's naturalized form: one-item sequences read through to their item. */
function dcmjsNaturalized(value) {
  if (Array.isArray(value)) {
    const items = value.map(dcmjsNaturalized);
    const isSequence = items.length === 1 && items[0] && typeof items[0] === 'object' && !Array.isArray(items[0]) && !('Alphabetic' in items[0]) && !('BulkDataURI' in items[0]) && !('InlineBinary' in items[0]);
    return isSequence ? addAccessors(items, items[0]) : items;
  }
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = dcmjsNaturalized(v);
    return out;
  }
  return value;
}

const uidsOf = instances => (instances || []).map(i => i.SOPInstanceUID);
function summary(ds) {
  const representative = ds.instance || (ds.instances || [])[0];
  return {
    SeriesInstanceUID: ds.SeriesInstanceUID,
    SOPClassHandlerId: ds.SOPClassHandlerId,
    Modality: ds.Modality ?? null,
    SOPInstanceUID: representative ? representative.SOPInstanceUID : ds.SOPInstanceUID ?? null,
    instances: uidsOf(ds.instances),
    isReconstructable: Boolean(ds.isReconstructable),
    numImageFrames: ds.numImageFrames ?? null,
    isMultiFrame: Boolean(ds.isMultiFrame),
    isDerivedDisplaySet: Boolean(ds.isDerivedDisplaySet),
    isDynamicVolume: Boolean(ds.isDynamicVolume),
    referencedSeriesInstanceUID: ds.referencedSeriesInstanceUID ?? null,
    label: ds.label ?? null,
  };
}

function runStudy(study) {
  const service = makeServices();
  const errors = [];
  for (const series of study.series) {
    const instances = series.instances.map(dcmjsNaturalized);
    for (const instance of instances) instancesByImageId.set(instance.imageId, instance);
    try {
      service.makeDisplaySets(instances);
    } catch (error) {
      errors.push({ SeriesInstanceUID: series.SeriesInstanceUID, error: String(error && error.message || error) });
    }
  }
  return { StudyInstanceUID: study.StudyInstanceUID, displaySets: service.getActiveDisplaySets().map(summary), errors };
}

const origLog = console.log, origWarn = console.warn, origError = console.error;
console.log = console.warn = console.error = console.info = console.debug = () => {};
const input = JSON.parse(fs.readFileSync(inputPath, 'utf8'));
const result = { ohif: '3.13.2', studies: input.studies.map(runStudy) };
process.stdout.write(JSON.stringify(result, null, 1) + '\n');
