// The instances OHIF Viewer 3.13.2 hands to DicomMetadataStore.addInstances for local files,
// made with dcmjs exactly as OHIF's DICOMFileLoader.getDataset does
// (platform/app/src/lib/localFile/dicomFileLoader.js), then DicomMetadataStore.addInstance:
//   dicomData = DicomMessage.readFile(arrayBuffer)
//   dataset = DicomMetaDictionary.naturalizeDataset(dicomData.dict)
//   dataset.url = imageId
//   dataset._meta = DicomMetaDictionary.namifyDataset(dicomData.meta)
//   dataset.AvailableTransferSyntaxUID =
//     dataset.AvailableTransferSyntaxUID || dataset._meta.TransferSyntaxUID?.Value?.[0]
// OHIF's imageId is dicomfile:N (an index into its file manager); the file's absolute path is
// used here, as the repository's file ingest does.
// Usage: node naturalize.js DCMJS_DIR < paths (one per line). Prints one JSON line per file:
// {"path", "instance"} (the instance after JSON transport) or {"path", "error"}.
"use strict";
const fs = require("fs");
const path = require("path");
const readline = require("readline");

const dcmjs = require(path.join(process.argv[2], "node_modules", "dcmjs"));
const { DicomMessage, DicomMetaDictionary } = dcmjs.data;
dcmjs.log.setLevel("silent");

function instanceOf(file) {
  const bytes = fs.readFileSync(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const dicomData = DicomMessage.readFile(buffer);
  const dataset = DicomMetaDictionary.naturalizeDataset(dicomData.dict);
  dataset.url = "dicomfile:" + path.resolve(file);
  dataset._meta = DicomMetaDictionary.namifyDataset(dicomData.meta);
  dataset.AvailableTransferSyntaxUID =
    dataset.AvailableTransferSyntaxUID || dataset._meta.TransferSyntaxUID?.Value?.[0];
  return dataset;
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (file) => {
  if (!file) return;
  let out;
  try {
    out = { path: file, instance: instanceOf(file) };
    out = JSON.parse(JSON.stringify(out)); // the transport OHIF's instances go through
  } catch (error) {
    out = { path: file, error: String((error && error.message) || error) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
});
