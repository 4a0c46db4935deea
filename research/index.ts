/** The lab's probes, for the research notebook: `import * as lab from 'rvpt-lab'`. */
export * from './src/probeFiles';
export * from './src/scaleProbe';
export * from './src/strengthProbe';
export * from './src/tuningProbe';
export * from './src/repulsionProbe';
export * from './src/seedProbe';
export * from './src/attributeProbe';
export * from './src/probeOverview';
export * from './src/decodability';
